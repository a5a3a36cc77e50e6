"""What the landing zone reads, in which order, and the reason for every entry it does not read."""

from __future__ import annotations

import os
from pathlib import Path

from mlops_assets.ingest.landing_files import (
    file_sha256,
    ignored_outside_tables,
    list_landing_files,
    list_table_folder,
)


def _touch(path: Path, stamp: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    if stamp is not None:
        os.utime(path, (stamp, stamp))
    return path


def test_every_entry_is_read_or_named_with_its_reason(tmp_path: Path) -> None:
    folder = tmp_path / "sales_orders"
    for name in ("b.csv", "a.parquet", "c.CSV", "d.csv.gz", "e.tsv", ".hidden.csv", "f.csv.tmp", "g.txt",
                 "h.csv.bak", ".DS_Store", "sub/i.csv"):
        _touch(folder / name, 1_700_000_000)
    listing = list_table_folder(folder, tmp_path)
    assert [p.name for p in listing.files] == ["a.parquet", "b.csv", "c.CSV", "d.csv.gz", "e.tsv"]
    assert sorted(p.name for p in listing.temporary) == [".hidden.csv", "f.csv.tmp"]
    assert dict(listing.ignored) == {
        "sales_orders/.DS_Store": "a hidden name (leading dot): not read",
        "sales_orders/g.txt": "not a landing file type: read are .csv.gz, .tsv.gz, .parquet, .csv, .tsv",
        "sales_orders/h.csv.bak": "not a landing file type: read are .csv.gz, .tsv.gz, .parquet, .csv, .tsv",
        "sales_orders/sub": "a subfolder: not read; move its files up into sales_orders/",
    }
    assert list_table_folder(tmp_path / "missing", tmp_path).files == []


def test_files_are_applied_in_the_order_they_arrived_then_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "customers"
    _touch(folder / "b_orders.csv", 1_700_000_000)
    _touch(folder / "a_fix.csv", 1_700_000_100)
    _touch(folder / "c.csv", 1_700_000_000)
    assert [p.name for p in list_landing_files(folder)] == ["b_orders.csv", "c.csv", "a_fix.csv"]


def test_links_that_leave_the_landing_zone_are_refused(tmp_path: Path) -> None:
    landing, outside = tmp_path / "landing", _touch(tmp_path / "secret.csv")
    folder = landing / "products"
    own = _touch(folder / "own.csv")
    (folder / "out.csv").symlink_to(outside)
    (folder / "inside.csv").symlink_to(own)
    (folder / "broken.csv").symlink_to(tmp_path / "gone.csv")
    (landing / "customers").symlink_to(tmp_path, target_is_directory=True)
    listing = list_table_folder(folder, landing)
    assert sorted(p.name for p in listing.files) == ["inside.csv", "own.csv"]
    assert dict(listing.ignored) == {
        "products/broken.csv": "a broken symbolic link",
        "products/out.csv": "a symbolic link to a file outside the landing zone: refused",
    }
    linked = list_table_folder(landing / "customers", landing)
    assert linked.files == [] and linked.ignored == [
        ("customers", "a link to a folder outside the landing zone: refused")]


def test_entries_outside_the_table_folders_are_named(tmp_path: Path) -> None:
    _touch(tmp_path / "orders.csv")
    _touch(tmp_path / "orders" / "a.csv")
    _touch(tmp_path / "products" / "p.csv")
    ignored = dict(ignored_outside_tables(tmp_path))
    assert set(ignored) == {"orders", "orders.csv"}
    assert ignored["orders.csv"].startswith("a file at the top of the landing zone: not read")
    assert ignored["orders"].startswith("not a table folder (tables: sales_orders, products")
    assert ignored_outside_tables(tmp_path / "missing") == []


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
