"""Series files through the raw asset as Dagster runs it: the settings reach the step and the run says what it did."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from mlops_assets_tests.conftest import materialize_all

pytestmark = pytest.mark.e2e

HEADER = "unique_id,ds,y\n"


def _put(data_dir: Path, name: str, text: str, stamp: float) -> None:
    path = data_dir / "landing" / "series" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + text)
    os.utime(path, (stamp, stamp))


def _run(data_dir: Path, instance: dg.DagsterInstance) -> tuple[dict, list[str]]:
    result = materialize_all(data_dir, settings_file=str(data_dir / "settings.yaml"), instance=instance,
                             selection=dg.AssetSelection.assets(["raw", "series"]))
    assert result.success
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        table = con.execute("select unique_id, strftime(ds, '%Y-%m-%d'), y from raw.series").fetchall()
        reasons = [r for (r,) in con.execute("select reason from raw.rejected_rows order by source_row").fetchall()]
    logged = [e.user_message for e in instance.all_logs(result.run_id) if e.level == logging.WARNING]
    return {(uid, ds): y for uid, ds, y in table} | {"rejected": reasons}, logged


def test_a_run_keeps_known_actuals_refuses_future_ones_and_names_files_still_being_written(tmp_path):
    data_dir = tmp_path / "data"
    (data_dir).mkdir()
    (data_dir / "settings.yaml").write_text("source: series\nfrequency: W-MON\ningest: {as_of: 2025-06-15}\n")
    (tmp_path / "home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "home"))
    _put(data_dir, "a.csv", "P005,2025-05-26,40\nP005,2025-06-02,46\nP005,2025-06-23,\n", 1_700_000_000)
    first, _ = _run(data_dir, instance)
    assert first[("P005", "2025-06-02")] == 46
    _put(data_dir, "fix.csv", "P005,2025-06-02,NaN\nP005,2025-06-09,44\nP005,2025-06-16,50\n", 1_700_000_100)
    _put(data_dir, ".upload.csv", "P005,2025-06-09,99\n", 1_700_000_100)
    second, logged = _run(data_dir, instance)
    assert second[("P005", "2025-06-02")] == 46 and second[("P005", "2025-06-09")] == 44
    assert ("P005", "2025-06-16") not in second  # after ingest.as_of: an actual from the future
    assert second["rejected"] == ["ds 2025-06-16 is in the future (today is 2025-06-15): an actual y cannot be "
                                  "dated after today; leave y empty for a planned period"]
    assert any("series/fix.csv line 2 (column y, P005 2025-06-02: 46 kept)" in m for m in logged), logged
    assert any("series/.upload.csv: a temporary name" in m and "still being written" in m for m in logged), logged
