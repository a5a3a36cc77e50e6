"""Incremental ingestion of a landing folder: hashes, corrections by key, all-or-nothing batches."""

from __future__ import annotations

import os
from datetime import date, datetime

import pandas as pd
import pytest

from mlops_assets.ingest.ingestion import LandingFileError
from mlops_assets.ingest.raw_layer import ingest_folder

HEADER = "customer_id,customer_name,channel,region\n"
NOW = datetime(2026, 11, 1, 12, 0, 0)


def _ingest(root, existing=None, files=None, **kwargs):
    return ingest_folder(
        "customers",
        landing_root=root,
        existing=existing if existing is not None else pd.DataFrame(),
        ingested_files=files if files is not None else pd.DataFrame(),
        today=date(2026, 11, 1),
        now=NOW,
        **kwargs,
    )


@pytest.fixture()
def root(tmp_path):
    (tmp_path / "customers").mkdir()
    (tmp_path / "customers" / "a.csv").write_text(HEADER + "C1,Shop one,Retail,Ouest\nC2,Shop two,Online,Est\n")
    return tmp_path


def test_same_file_twice_adds_nothing_and_a_later_file_corrects_by_key(root):
    first = _ingest(root)
    assert first.table["customer_id"].tolist() == ["C1", "C2"]
    assert first.files[["source_file", "n_rows", "n_rejected"]].values.tolist() == [["customers/a.csv", 2, 0]]

    again = _ingest(root, first.table, first.files)
    assert not again.changed and again.skipped == ["customers/a.csv"]
    assert again.table.equals(first.table)

    (root / "customers" / "b.csv").write_text(HEADER + "C2,Shop two renamed,Online,Est\n")
    corrected = _ingest(root, first.table, first.files)
    assert corrected.files["source_file"].tolist() == ["customers/b.csv"]
    names = corrected.table.set_index("customer_id")["customer_name"].to_dict()
    assert names == {"C1": "Shop one", "C2": "Shop two renamed"}


def test_a_file_still_being_written_is_left_for_later(root):
    fresh = _ingest(root, settle_seconds=3600)
    assert fresh.settling == ["customers/a.csv"] and not fresh.changed
    assert fresh.table.empty


def test_one_unreadable_file_fails_the_whole_batch(root):
    (root / "customers" / "b.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00garbage")
    with pytest.raises(LandingFileError, match="b.csv"):
        _ingest(root)


def test_in_one_batch_the_file_that_arrived_last_wins_whatever_its_name(root):
    (root / "customers" / "a.csv").unlink()
    (root / "customers" / "b_export.csv").write_text(HEADER + "C1,Old name,Retail,Ouest\nC2,Shop two,Online,Est\n")
    (root / "customers" / "a_fix.csv").write_text(HEADER + "C1,Corrected name,Retail,Ouest\n")
    os.utime(root / "customers" / "b_export.csv", (1_700_000_000, 1_700_000_000))
    os.utime(root / "customers" / "a_fix.csv", (1_700_000_060, 1_700_000_060))
    result = _ingest(root)
    assert result.table.set_index("customer_id")["customer_name"].to_dict() == {
        "C1": "Corrected name", "C2": "Shop two"}
    assert result.conflicts.values.tolist() == [["C1", "customers/b_export.csv:2", "customers/a_fix.csv:2"]]


def test_files_the_folder_does_not_read_are_named(root):
    (root / "customers" / "old.csv.bak").write_text(HEADER)
    assert _ingest(root).ignored == [("customers/old.csv.bak", "not a landing file type: read are .csv.gz, "
                                                               ".tsv.gz, .parquet, .csv, .tsv")]


def test_a_series_column_declared_after_its_file_arrived_is_read_from_the_file_again(tmp_path):
    (tmp_path / "series").mkdir()
    (tmp_path / "series" / "s.csv").write_text("unique_id,ds,y,price\nA,2024-01-01,5,4.5\nA,2024-01-08,,4.0\n")

    def ingest(existing, files, extra=()):
        return ingest_folder("series", landing_root=tmp_path, existing=existing, ingested_files=files,
                             today=date(2026, 11, 1), now=NOW, extra_numbers=extra)

    before = ingest(pd.DataFrame(), pd.DataFrame())
    assert "price" not in before.table
    assert ingest(before.table, before.files).skipped == ["series/s.csv"]
    declared = ingest(before.table, before.files, ("price",))
    assert declared.table["price"].tolist() == [4.5, 4.0] and len(declared.table) == 2
    assert ingest(declared.table, pd.concat([before.files, declared.files]), ("price",)).skipped == ["series/s.csv"]


def test_a_second_file_of_planned_rows_adds_the_future_and_never_erases_an_actual(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "actuals.csv").write_text("unique_id,ds,y,price\nA,2024-01-01,5,4.5\nA,2024-01-08,6,4.0\n")
    (folder / "plans.csv").write_text("unique_id,ds,y,price\nA,2024-01-08,,3.5\nA,2024-01-15,,3.0\n")
    os.utime(folder / "plans.csv", (1e9 + 10, 1e9 + 10))  # arrived after the actuals
    os.utime(folder / "actuals.csv", (1e9, 1e9))
    result = ingest_folder("series", landing_root=tmp_path, existing=pd.DataFrame(), ingested_files=pd.DataFrame(),
                           today=date(2026, 11, 1), now=NOW, extra_numbers=("price",))
    table = result.table
    assert table["y"].fillna(-1).tolist() == [5.0, 6.0, -1.0]
    assert table["price"].tolist() == [4.5, 3.5, 3.0]  # the later file's values, the earlier actual
