"""Drift and realized accuracy over time in a real Evidently workspace, served by Evidently's own UI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import requests

from mlops_assets.devtools.processes import free_port, stop_process_group
from mlops_assets.monitoring.evidently_workspace import PROJECT, rebuild_workspace
from mlops_assets_tests.conftest import materialize_all

DRIFT = pd.DataFrame({
    "reported_at": pd.to_datetime(["2026-01-05", "2026-01-12", "2026-01-19"]),
    "drift_share": [0.1, 0.25, 0.5],
    "drifted_columns": ["", "price", "price,promo"],
    "method": ["K-S"] * 3,
})
ACCURACY = pd.DataFrame({
    "issued_at": pd.to_datetime(["2026-01-05"] * 2 + ["2026-01-12"] * 2),
    "unique_id": ["a", "b", "a", "b"],
    "model_version": ["1", "1", "2", "2"],
    "smape": [10.0, 20.0, 40.0, 60.0],
    "in_80": pd.array([True, False, True, pd.NA], dtype="boolean"),
    "in_95": pd.array([True, True, True, True], dtype="boolean"),
})


def means(folder: Path) -> dict[str, list[tuple[str, dict]]]:
    """Per tag, (timestamp, {column: mean}) of every stored run, in time order."""
    out: dict[str, list] = {}
    for path in sorted(folder.glob("*/snapshots/*.json")):
        snapshot = json.loads(path.read_text())
        values = {}
        for result in snapshot["metric_results"].values():
            values[result["metric_value_location"]["metric"]["params"]["column"]] = result["value"]
        out.setdefault(snapshot["tags"][0], []).append((snapshot["timestamp"][:10], values))
    return {tag: sorted(runs) for tag, runs in out.items()}


def test_runs_carry_drift_share_and_realized_accuracy_per_issue(tmp_path):
    summary = rebuild_workspace(tmp_path, DRIFT, ACCURACY)
    assert (summary.drift_runs, summary.accuracy_runs) == (3, 2)
    stored = means(tmp_path)
    assert [(day, round(v["drift_share"], 3)) for day, v in stored["drift"]] == [
        ("2026-01-05", 0.1), ("2026-01-12", 0.25), ("2026-01-19", 0.5)]
    first, second = (v for _, v in stored["accuracy"])
    assert (first["smape"], first["in_80"], first["in_95"]) == (15.0, 0.5, 1.0)
    assert (second["smape"], second["in_80"]) == (50.0, 1.0)  # the unknown coverage is left out, not a miss


def test_a_rebuild_neither_doubles_runs_nor_changes_the_project(tmp_path):
    first = rebuild_workspace(tmp_path, DRIFT, ACCURACY)
    second = rebuild_workspace(tmp_path, DRIFT.head(2), ACCURACY.iloc[:0])
    assert second.project_id == first.project_id
    assert len(list(tmp_path.glob("*/snapshots/*.json"))) == 2
    dashboard = json.loads(next(tmp_path.glob("*/dashboard.json")).read_text())
    titles = sorted(panel["title"] for panel in dashboard["panels"])
    assert titles == ["Drift share per report", "Interval coverage per forecast issue", "Latest drift share",
                      "Latest realized SMAPE", "Realized SMAPE per forecast issue"]


def test_the_asset_builds_the_project_before_any_drift_report_or_actual(tmp_path):
    result = materialize_all(tmp_path, selection=dg.AssetSelection.assets(["monitoring", "evidently_workspace"]))
    metadata = result.asset_materializations_for_node("monitoring__evidently_workspace")[0].metadata
    assert (metadata["drift_runs"].value, metadata["accuracy_runs"].value) == (0, 0)
    assert len(list((tmp_path / "evidently").glob("*/dashboard.json"))) == 1


@pytest.mark.e2e
def test_evidently_ui_shows_the_project_and_its_runs(tmp_path):
    rebuild_workspace(tmp_path / "workspace", DRIFT, ACCURACY)
    port = free_port()
    command = [str(Path(sys.executable).parent / "evidently"), "ui", "--workspace", str(tmp_path / "workspace"),
               "--host", "127.0.0.1", "--port", str(port)]
    with (tmp_path / "ui.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, projects = time.monotonic() + 120, None
        while time.monotonic() < deadline and projects is None:
            try:
                projects = requests.get(f"http://127.0.0.1:{port}/api/projects", timeout=5).json()
            except requests.ConnectionError:
                time.sleep(0.5)
        assert projects is not None, (tmp_path / "ui.log").read_text()[-2000:]
        project = next(p for p in projects if p["name"] == PROJECT)
        runs = requests.get(f"http://127.0.0.1:{port}/api/projects/{project['id']}/snapshots", timeout=10).json()
        assert len(runs) == 5
    finally:
        stop_process_group(process, signal.SIGTERM)
