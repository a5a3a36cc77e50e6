"""`mlops-assets materialize`: runs recorded in DAGSTER_HOME (by default inside the data directory)."""

import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.runner import materialize
from mlops_assets.settings import DataPaths

pytestmark = pytest.mark.e2e


def test_a_selection_that_names_nothing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(ValueError, match="names no asset"):
        materialize('key:"nowhere/nothing"', DataPaths(tmp_path))


def test_the_command_records_the_run_in_the_data_directory_and_prints_one_line_per_step(small_sample, tmp_path):
    (tmp_path / "landing").symlink_to(small_sample / "landing")
    env = {"PATH": "/usr/bin:/bin", "MLOPS_DATA_DIR": str(tmp_path), "HOME": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", "from mlops_assets.cli import entry_point; entry_point()",
                           "materialize", "--select", "group:raw"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    counted = [re.search(r"\[\s*(\d+)/(\d+)\] \S+: (done in|skipped|FAILED)", line) for line in lines]
    assert [(int(m[1]), int(m[2])) for m in counted if m] == [(n, 10) for n in range(1, 11)], lines
    assert not [line for line in lines if "DEBUG" in line or "Warning" in line or "nanobind" in line], lines
    # No DAGSTER_HOME given: the run lands in <data dir>/dagster_home, where `make dev` will look.
    home = tmp_path / "dagster_home"
    assert (home / "dagster.yaml").exists()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_latest_materialization_event(dg.AssetKey(["raw", "products"])) is not None
        assert instance.get_latest_materialization_event(dg.AssetKey(["gold", "sales_data_for_forecast"])) is None
