"""The sensor's view of the landing zone names every file it does not read, and why."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from mlops_assets.ingest.landing_watch import scan_landing


def _put(landing: Path, relative: str, data: bytes = b"x") -> None:
    path = landing / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (1_700_000_000, 1_700_000_000))


def test_the_scan_reads_compressed_csv_and_names_what_it_skips(tmp_path: Path) -> None:
    _put(tmp_path, "customers/c.csv.gz", gzip.compress(b"customer_id,customer_name\nC1,Shop\n"))
    _put(tmp_path, "customers/notes.txt")
    _put(tmp_path, "customers/archive/c.csv")
    _put(tmp_path, "orders.csv")
    (tmp_path / "products").mkdir()
    (tmp_path / "products" / "passwd.csv").symlink_to("/etc/passwd")
    scan = scan_landing(tmp_path, {})
    assert [f.path for f in scan.ready] == ["customers/c.csv.gz"]
    assert len(scan.ignored) == 4
    summary = scan.summary()
    assert "4 not read (orders.csv: a file at the top of the landing zone" in summary
    assert "customers/archive: a subfolder: not read" in summary
    assert "customers/notes.txt: not a landing file type" in summary
    assert "products/passwd.csv: a symbolic link to a file outside the landing zone: refused" in summary
    assert "root:" not in summary
