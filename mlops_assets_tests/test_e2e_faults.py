"""Runs that stop after writing but before Dagster records the materialization, then run again."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.settings import DataPaths
from mlops_assets.warehouse import read_snapshot
from mlops_assets_tests.conftest import materialize_all

pytestmark = pytest.mark.e2e

DRIFT = dg.AssetSelection.assets(["monitoring", "drift_report"], ["monitoring", "drift_summary"])


def test_drift_report_appended_by_a_killed_run_is_not_appended_again(small_sample, tmp_path):
    shutil.copytree(small_sample / "landing", tmp_path / "landing")
    upstream = dg.AssetSelection.groups("raw", "gold")
    assert materialize_all(tmp_path, selection=upstream | DRIFT).success
    first = read_snapshot(DataPaths(tmp_path).exports, "monitoring.drift_summary")
    assert len(first) == 1 and first["input_fingerprint"].notna().all()
    # The report's path is stored relative to the data directory, so that the directory can move.
    report = Path(first["report_path"].iloc[0])
    assert not report.is_absolute() and (tmp_path / report).is_file()
    # A fresh instance knows no earlier materialization: as after a run killed once the row was appended.
    forgetful = dg.DagsterInstance.ephemeral()
    again = materialize_all(tmp_path, instance=forgetful, selection=DRIFT)
    assert again.success
    after = read_snapshot(DataPaths(tmp_path).exports, "monitoring.drift_summary")
    assert len(after) == 1
    logs = [e.message for e in forgetful.all_logs(again.run_id) if e.message]
    assert any("already reported by run" in m for m in logs)
    check = again.get_asset_check_evaluations()[0]
    assert check.metadata["drift_share"].value == pytest.approx(float(first["drift_share"].iloc[0]))
