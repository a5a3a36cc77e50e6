"""Reading a landing file as text cells: compressed and tab-separated files, and the line each row starts on."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.ingest.reading import (
    LandingFileError,
    LandingFileRefused,
    handle_sha256,
    open_landing_file,
    read_chunks,
    read_table,
    readable_suffix,
    shorten,
)

TEXT = "a,b\n1,x\n2,y\n"


def test_compressed_and_tab_separated_files_read_like_csv(tmp_path: Path) -> None:
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(TEXT.encode()))
    (tmp_path / "t.tsv").write_text(TEXT.replace(",", "\t"))
    (tmp_path / "t.tsv.gz").write_bytes(gzip.compress(TEXT.replace(",", "\t").encode()))
    for name in ("t.csv.gz", "t.tsv", "t.tsv.gz"):
        table = read_table(tmp_path / name)
        assert table.frame.to_dict("list") == {"a": ["1", "2"], "b": ["x", "y"]}, name
        assert table.line.tolist() == [2, 3]
    (tmp_path / "cut.csv.gz").write_bytes(gzip.compress(TEXT.encode())[:-6])
    with pytest.raises(LandingFileError, match="cut.csv.gz: not a complete gzip file"):
        read_table(tmp_path / "cut.csv.gz")


def test_a_record_spanning_lines_keeps_the_numbering_of_the_next_ones(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('a,b\n1,"two\nlines"\n2,y\n3,z,extra,more\n4,"x"\n')
    table = read_table(path)
    assert table.line.tolist() == [2, 4, 5, 6]
    assert table.frame["b"].tolist() == ["two\nlines", "y", "z", "x"]
    assert table.extra == {2: ["extra", "more"]}


def test_readable_suffixes_and_shortened_values() -> None:
    assert [readable_suffix(n) for n in ("a.CSV.GZ", "a.tsv", "a.parquet", "a.txt", "a.csv.bak")] == [
        ".csv.gz", ".tsv", ".parquet", None, None]
    assert shorten("abc") == "abc"
    assert shorten("x" * 100) == "x" * 80 + "... (100 characters)"


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_line_numbers_hold_for_every_line_ending_with_or_without_a_quoted_break(tmp_path: Path, end: str) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(end.join(["a,b", "1,x", '2,"y', 'z"', "", "3,w"]).encode())
    table = read_table(path)
    assert table.frame["a"].tolist() == ["1", "2", "", "3"] and table.line.tolist() == [2, 3, 5, 6]
    path.write_bytes((end.join(["a,b", "1,x", "", '3,"5"" screen"']) + end).encode())
    assert read_table(path).line.tolist() == [2, 3, 4]
    path.write_bytes(end.join(["a,b", '1,5" screen', "2,x"]).encode())  # a stray quote inside a value
    assert read_table(path).line.tolist() == [2, 3]


def _chunked(path: Path, chunk_rows: int) -> tuple[pd.DataFrame, list[int], dict[int, list[str]]]:
    """The chunks of a file joined back: cells, line numbers, and extra fields by row of the whole file."""
    frames, lines, extra, done = [], [], {}, 0
    for chunk in read_chunks(path, chunk_rows):
        assert len(chunk.frame) <= chunk_rows
        frames.append(chunk.frame)
        lines += chunk.line.tolist()
        extra |= {done + row: fields for row, fields in chunk.extra.items()}
        done += len(chunk.frame)
    return pd.concat(frames, ignore_index=True), lines, extra


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("body", [
    ["1,x", '2,"y', 'z"', "", "3,w", '4,"a ""b""', 'c"', "5,v"],       # quoted breaks, a blank line
    ["1,x", "2,y,extra", "3,z", "4,w"],                               # a line wider than the header
    ["1,x", '2,5" screen', "3,y", '4,"q"', "5,z"],                     # a stray quote inside a value
])
def test_a_file_read_in_chunks_is_the_file_read_at_once(tmp_path: Path, end: str, body: list[str]) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes((end.join(["a,b", *body]) + end).encode())
    whole = read_table(path)
    for chunk_rows in (1, 2, 3):
        frame, lines, extra = _chunked(path, chunk_rows)
        assert frame.equals(whole.frame), chunk_rows
        assert lines == whole.line.tolist() and extra == whole.extra, chunk_rows


def test_a_parquet_file_read_in_chunks_numbers_rows_as_a_spreadsheet(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pd.DataFrame({"a": [1, 2, 3, 4, 5], "b": pd.to_datetime(["2024-01-01"] * 5)}).to_parquet(path)
    frame, lines, _ = _chunked(path, 2)
    assert frame.equals(read_table(path).frame) and lines == [2, 3, 4, 5, 6]
    assert frame["b"].tolist() == ["2024-01-01 00:00:00"] * 5


def test_an_empty_file_and_a_header_alone_are_told_apart(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(LandingFileError, match="empty"):
        read_table(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("a,b\n")
    chunks = list(read_chunks(tmp_path / "h.csv", 2))
    assert len(chunks) == 1 and list(chunks[0].frame.columns) == ["a", "b"] and chunks[0].frame.empty


def test_every_pass_reads_the_file_that_was_opened_not_what_its_name_points_at_later(tmp_path: Path) -> None:
    """Hash, encoding survey and parse all read the one open file: a swap after the open changes nothing."""
    path, other = tmp_path / "t.csv.gz", tmp_path / "other.csv"
    path.write_bytes(gzip.compress(TEXT.encode()))
    other.write_text("secret\nroot:x:0:0\n")
    with open_landing_file(path, tmp_path) as handle:
        path.unlink()
        path.symlink_to(other)
        assert handle_sha256(handle) == hashlib.sha256(gzip.compress(TEXT.encode())).hexdigest()
        chunks = list(read_chunks(path, 1, handle))
        assert handle_sha256(handle) == hashlib.sha256(gzip.compress(TEXT.encode())).hexdigest()
    assert [c.frame.to_dict("list") for c in chunks] == [{"a": ["1"], "b": ["x"]}, {"a": ["2"], "b": ["y"]}]


def test_a_link_is_refused_at_the_open_unless_it_was_listed_inside_the_landing_zone(tmp_path: Path) -> None:
    landing, outside = tmp_path / "landing", tmp_path / "passwd.csv"
    (landing / "products").mkdir(parents=True)
    outside.write_text("root:x:0:0\n")
    (landing / "products" / "own.csv").write_text(TEXT)
    (landing / "products" / "inside.csv").symlink_to(landing / "products" / "own.csv")
    (landing / "products" / "out.csv").symlink_to(outside)
    with open_landing_file(landing / "products" / "inside.csv", landing) as handle:
        assert handle.read() == TEXT.encode()
    with pytest.raises(LandingFileRefused, match="a symbolic link to a file outside the landing zone"):
        open_landing_file(landing / "products" / "out.csv", landing)
    with pytest.raises(LandingFileRefused, match="a symbolic link when opened"):
        read_table(landing / "products" / "out.csv")  # no landing zone given: no link is followed
    with pytest.raises(LandingFileRefused, match="removed after the folder was listed"):
        open_landing_file(landing / "products" / "gone.csv", landing)
