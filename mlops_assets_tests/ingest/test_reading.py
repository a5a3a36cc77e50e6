"""Reading a landing file as text cells: compressed and tab-separated files, and the line each row starts on."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from mlops_assets.ingest.reading import LandingFileError, read_table, readable_suffix, shorten

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
