"""Incremental ingestion of a landing folder: hashes, corrections by key, all-or-nothing batches."""

from __future__ import annotations

import os
from datetime import date, datetime

import duckdb
import pandas as pd
import pytest

from mlops_assets.ingest import raw_layer
from mlops_assets.ingest.ingestion import LandingFileError, validate_table
from mlops_assets.warehouse import publish_snapshot_from_table, write_part, write_tables
from mlops_assets_tests.ingest.raw_runs import ingest

HEADER = "customer_id,customer_name,channel,region\n"
NOW = datetime(2026, 11, 1, 12, 0, 0)


def _ingest(root, **kwargs):
    return ingest(root, root / "warehouse.duckdb", "customers", today=date(2026, 11, 1), now=NOW, **kwargs)


@pytest.fixture()
def root(tmp_path):
    (tmp_path / "customers").mkdir()
    (tmp_path / "customers" / "a.csv").write_text(HEADER + "C1,Shop one,Retail,Ouest\nC2,Shop two,Online,Est\n")
    return tmp_path


def test_same_file_twice_adds_nothing_and_a_later_file_corrects_by_key(root):
    first = _ingest(root)
    assert first.table["customer_id"].tolist() == ["C1", "C2"]
    assert first.staged.files[["source_file", "n_rows", "n_rejected"]].values.tolist() == [["customers/a.csv", 2, 0]]

    again = _ingest(root)
    assert not again.written and again.staged.skipped == ["customers/a.csv"]
    assert again.table.equals(first.table)

    (root / "customers" / "b.csv").write_text(HEADER + "C2,Shop two renamed,Online,Est\n")
    corrected = _ingest(root)
    assert corrected.staged.files["source_file"].tolist() == ["customers/b.csv"]
    names = corrected.table.set_index("customer_id")["customer_name"].to_dict()
    assert names == {"C1": "Shop one", "C2": "Shop two renamed"}


def test_the_merged_table_keeps_older_keys_takes_corrections_and_follows_the_key(root):
    (root / "customers" / "a.csv").write_text(HEADER + "C2,Two,Retail,Ouest\nC1,One,Retail,Ouest\nC3,Three,,\n")
    _ingest(root)
    (root / "customers" / "b.csv").write_text(HEADER + "C4,Four,Online,Est\nC1,One renamed,Online,Est\n")
    table = _ingest(root).table
    assert table[["customer_id", "customer_name", "source_file"]].values.tolist() == [
        ["C1", "One renamed", "customers/b.csv"], ["C2", "Two", "customers/a.csv"],
        ["C3", "Three", "customers/a.csv"], ["C4", "Four", "customers/b.csv"]]


def test_a_file_still_being_written_is_left_for_later(root):
    fresh = _ingest(root, settle_seconds=3600)
    assert fresh.staged.settling == ["customers/a.csv"] and fresh.staged.files.empty
    assert fresh.table.empty and list(fresh.table.columns)[:2] == ["customer_id", "customer_name"]


def test_one_unreadable_file_fails_the_whole_batch(root):
    (root / "customers" / "b.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00garbage")
    with pytest.raises(LandingFileError, match="b.csv"):
        _ingest(root)
    assert not (root / "warehouse.duckdb").exists() or _ingest(root, settle_seconds=3600).table.empty


def test_in_one_batch_the_file_that_arrived_last_wins_whatever_its_name(root):
    (root / "customers" / "a.csv").unlink()
    (root / "customers" / "b_export.csv").write_text(HEADER + "C1,Old name,Retail,Ouest\nC2,Shop two,Online,Est\n")
    (root / "customers" / "a_fix.csv").write_text(HEADER + "C1,Corrected name,Retail,Ouest\n")
    os.utime(root / "customers" / "b_export.csv", (1_700_000_000, 1_700_000_000))
    os.utime(root / "customers" / "a_fix.csv", (1_700_000_060, 1_700_000_060))
    result = _ingest(root)
    assert result.table.set_index("customer_id")["customer_name"].to_dict() == {
        "C1": "Corrected name", "C2": "Shop two"}
    assert result.staged.conflicts.values.tolist() == [["C1", "customers/b_export.csv:2", "customers/a_fix.csv:2"]]
    assert result.staged.n_conflicts == 1


def test_files_the_folder_does_not_read_are_named(root):
    (root / "customers" / "old.csv.bak").write_text(HEADER)
    assert _ingest(root).staged.ignored == [("customers/old.csv.bak", "not a landing file type: read are .csv.gz, "
                                                               ".tsv.gz, .parquet, .csv, .tsv")]


def test_a_series_column_declared_after_its_file_arrived_is_read_from_the_file_again(tmp_path):
    (tmp_path / "series").mkdir()
    (tmp_path / "series" / "s.csv").write_text("unique_id,ds,y,price\nA,2024-01-01,5,4.5\nA,2024-01-08,,4.0\n")

    def run(extra=()):
        return ingest(tmp_path, tmp_path / "warehouse.duckdb", "series", today=date(2026, 11, 1), now=NOW,
                      extra_numbers=extra)

    before = run()
    assert "price" not in before.table
    assert run().staged.skipped == ["series/s.csv"]
    declared = run(("price",))
    assert declared.table["price"].tolist() == [4.5, 4.0] and len(declared.table) == 2
    assert run(("price",)).staged.skipped == ["series/s.csv"]


def test_a_second_file_of_planned_rows_adds_the_future_and_never_erases_an_actual(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "actuals.csv").write_text("unique_id,ds,y,price\nA,2024-01-01,5,4.5\nA,2024-01-08,6,4.0\n")
    (folder / "plans.csv").write_text("unique_id,ds,y,price\nA,2024-01-08,,3.5\nA,2024-01-15,,3.0\n")
    os.utime(folder / "plans.csv", (1e9 + 10, 1e9 + 10))  # arrived after the actuals
    os.utime(folder / "actuals.csv", (1e9, 1e9))
    result = ingest(tmp_path, tmp_path / "warehouse.duckdb", "series", today=date(2026, 11, 1), now=NOW,
                    extra_numbers=("price",))
    table = result.table
    assert table["y"].fillna(-1).tolist() == [5.0, 6.0, -1.0]
    assert table["price"].tolist() == [4.5, 3.5, 3.0]  # the later file's values, the earlier actual


SERIES = ("unique_id,ds,y,product_name\n"
          "A,2024-01-01,5,Shirt\n"
          "A,2024-01-08,abc,Shirt\n"                    # not a number
          'B,2024-01-01,3,"Long\nname"\n'               # a record over two lines
          "A,2024-01-01,7,Shirt\n"                      # repeats line 2, two chunks later
          "B,2024-01-08,4,Hat,extra\n"                  # a field beyond the header
          "\n"
          "B,2024-01-08,4,Hat\n"
          "C,,1,Cap\n"                                  # no date
          "B,2024-01-01,9,Hat\n"                        # repeats line 4
          "C,2024-01-01,2,Cap\n")


def test_a_file_ingested_in_chunks_gives_the_table_and_quarantine_of_one_chunk(tmp_path, monkeypatch):
    from mlops_assets.ingest import raw_layer

    seen = []

    def validate(raw, *args, **kwargs):
        seen.append(len(raw.frame))
        return validate_table(raw, *args, **kwargs)

    monkeypatch.setattr(raw_layer, "validate_table", validate)
    runs = {}
    for chunk_rows in (None, 2):
        root = tmp_path / str(chunk_rows)
        (root / "series").mkdir(parents=True)
        (root / "series" / "s.csv").write_text(SERIES)
        runs[chunk_rows] = ingest(root, root / "warehouse.duckdb", "series", today=date(2026, 11, 1), now=NOW,
                                  chunk_rows=chunk_rows)
    whole, chunked = runs[None], runs[2]
    assert seen[0] == 10 and max(seen[1:]) == 2 and sum(seen[1:]) == 10  # ten records, a blank line among them
    assert chunked.table.equals(whole.table) and chunked.rejected.equals(whole.rejected)
    assert whole.table[["unique_id", "source_row"]].values.tolist() == [["A", 2], ["B", 4], ["B", 9], ["C", 12]]
    assert whole.rejected[["source_row", "column_name", "reason"]].values.tolist() == [
        [3, "y", "y 'abc' is not a number"],
        [6, None, "duplicate of line 2 (same unique_id, ds)"],
        [7, None, "more fields than the 4 of the header (extra: extra); a separator inside an unquoted value?"],
        [10, "ds", "ds is empty (a value is required)"],
        [11, None, "duplicate of line 4 (same unique_id, ds)"],
    ]
    assert chunked.staged.files[["n_rows", "n_rejected"]].values.tolist() == [[4, 5]]


SECRET = "root:x:0:0:root:/root:/bin/bash\n"


def test_a_file_replaced_by_a_link_after_the_listing_is_refused_and_nothing_of_its_target_is_read(
        root, tmp_path_factory, monkeypatch):
    secret = tmp_path_factory.mktemp("outside") / "passwd.csv"
    secret.write_text(SECRET)
    (root / "customers" / "b.csv").write_text(HEADER + "C3,Shop three,Retail,Nord\n")
    (root / "customers" / "c.csv").write_text(HEADER + "C4,Shop four,Retail,Sud\n")
    listed = raw_layer.list_table_folder

    def listed_then_swapped(folder, landing_root=None):
        listing = listed(folder, landing_root)
        (root / "customers" / "b.csv").unlink()
        (root / "customers" / "b.csv").symlink_to(secret)
        (root / "customers" / "c.csv").unlink()
        os.mkfifo(root / "customers" / "c.csv")  # a pipe opened for reading would wait for a writer forever
        return listing

    monkeypatch.setattr(raw_layer, "list_table_folder", listed_then_swapped)
    result = _ingest(root)
    assert sorted(result.table["customer_id"]) == ["C1", "C2"]
    assert result.staged.files["source_file"].tolist() == ["customers/a.csv"]
    assert result.staged.ignored == [
        ("customers/b.csv", "a symbolic link to a file outside the landing zone: refused"),
        ("customers/c.csv", "not a regular file when opened (replaced after the folder was listed): refused")]
    assert "root:x" not in repr(result.staged) + repr(result.rejected)


def test_the_raw_steps_work_in_a_folder_named_with_a_quote_a_space_and_accents(tmp_path):
    root = tmp_path / "l'été des données"
    (root / "customers").mkdir(parents=True)
    (root / "customers" / "a.csv").write_text(HEADER + "C1,Shop one,Retail,Ouest\n")
    first = _ingest(root)
    (root / "customers" / "b.csv").write_text(HEADER + "C1,Corrected,Retail,Ouest\nC2,Shop two,Online,Est\n")
    second = _ingest(root)
    assert first.written and second.table.set_index("customer_id")["customer_name"].to_dict() == {
        "C1": "Corrected", "C2": "Shop two"}
    exports = root / "exports"
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        write_id = write_tables(con, replace={"raw.customers": second.table})
        published = publish_snapshot_from_table(con, exports, "raw.customers", write_id)
    assert pd.read_parquet(published)["customer_id"].tolist() == ["C1", "C2"]
    write_part(second.table, root / "parts" / "p.parquet")
    assert len(pd.read_parquet(root / "parts" / "p.parquet")) == 2


def _series_runs(tmp_path, *files: tuple[str, str], **kwargs):
    """Each file arrives in its own run, as corrections do; the runs' results in order."""
    (tmp_path / "series").mkdir(exist_ok=True)
    runs = []
    for name, text in files:
        (tmp_path / "series" / name).write_text("unique_id,ds,y\n" + text)
        runs.append(ingest(tmp_path, tmp_path / "warehouse.duckdb", "series", today=date(2026, 11, 1), now=NOW,
                           **kwargs))
    return runs


def test_a_later_empty_or_nan_y_keeps_the_known_actual_and_says_so(tmp_path):
    first, fix = _series_runs(tmp_path, ("a.csv", "P005,2025-05-26,40\nP005,2025-06-02,46\nP006,2025-06-02,3\n"),
                              ("fix.csv", "P005,2025-06-02,NaN\nP006,2025-06-02,\nP005,2025-06-09,\n"))
    assert first.staged.notices == []
    assert fix.table["y"].tolist()[:2] == [40.0, 46.0] and fix.table["y"].tolist()[3] == 3.0
    assert fix.table.set_index(["unique_id", "ds"])["source_file"].loc[("P005", "2025-06-02")] == "series/fix.csv"
    assert fix.staged.notices == [
        "2 empty y value(s) left the value an earlier file gave in place (setting ingest.empty_y: keep; 'erase' "
        "empties it): series/fix.csv line 2 (column y, P005 2025-06-02: 46 kept); series/fix.csv line 3 "
        "(column y, P006 2025-06-02: 3 kept)"]


def test_an_empty_y_erases_a_known_actual_only_when_the_settings_say_so(tmp_path):
    _, fix = _series_runs(tmp_path, ("a.csv", "P005,2025-06-02,46\n"), ("fix.csv", "P005,2025-06-02,NaN\n"),
                          empty_y="erase")
    assert fix.table["y"].isna().tolist() == [True]
    assert fix.staged.notices == ["1 empty y value(s) erased the value an earlier file gave (setting "
                                  "ingest.empty_y: erase): series/fix.csv line 2 (column y, P005 2025-06-02: 46 "
                                  "erased)"]


def test_an_actual_dated_after_today_is_quarantined_and_a_planned_row_is_kept(tmp_path):
    (result,) = _series_runs(tmp_path, ("s.csv", "P001,2026-10-26,40\nP001,2027-06-07,50\nP001,2026-11-09,\n"))
    assert result.table[["ds", "y"]].astype(str).values.tolist() == [["2026-10-26", "40.0"], ["2026-11-09", "nan"]]
    assert result.rejected[["source_row", "column_name", "reason"]].values.tolist() == [
        [3, "ds", "ds 2027-06-07 is in the future (today is 2026-11-01): an actual y cannot be dated after "
                  "today; leave y empty for a planned period"]]


def test_files_under_a_temporary_name_are_named_as_still_being_written(root):
    (root / "customers" / ".b.csv").write_text(HEADER + "C3,Shop three,Retail,Nord\n")
    (root / "customers" / "c.csv.part").write_text(HEADER)
    result = _ingest(root)
    assert sorted(result.table["customer_id"]) == ["C1", "C2"]
    written = "still being written; read once it is renamed to its final name"
    assert [(path, written in why) for path, why in result.staged.ignored] == [
        ("customers/.b.csv", True), ("customers/c.csv.part", True)]
