"""`mlops-assets materialize`: runs recorded in DAGSTER_HOME (by default inside the data directory)."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from mlops_assets.runner import materialize
from mlops_assets.settings import DataPaths
from mlops_assets_tests.conftest import python_ready
from mlops_assets_tests.test_run_lock import hold_in_another_process

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


def test_a_bad_settings_file_stops_the_command_before_its_first_step(tmp_path):
    """The whole settings file is checked when the definitions load: not at the step that first reads a key."""
    settings = tmp_path / "settings.yaml"
    settings.write_text("horizon: 8\nmodels: [Naive, NoSuchModel]\n")
    env = {"PATH": "/usr/bin:/bin", "MLOPS_DATA_DIR": str(tmp_path / "data"), "MLOPS_SETTINGS": str(settings),
           "HOME": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", "from mlops_assets.cli import entry_point; entry_point()",
                           "materialize"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith(f"error: settings file {settings}: models: unknown model name(s) ['NoSuchModel']")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "data" / "warehouse.duckdb").exists()


# A reader in another process: holds the DuckDB file open (read-only) for argv[2] seconds.
READER = textwrap.dedent(
    """
    import sys, time
    import duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print("ready", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


@pytest.mark.parametrize("holder", ["another run", "a reader"])
def test_the_command_says_why_a_run_stopped_before_its_first_step(tmp_path, holder):
    (tmp_path / "settings.yaml").write_text("locks: {run_wait_seconds: 0, warehouse_wait_seconds: 0}\n")
    (tmp_path / "landing" / "products").mkdir(parents=True)
    (tmp_path / "landing" / "products" / "p.csv").write_text("product_id,product_name\nP1,Comte\n")
    if holder == "another run":
        process = hold_in_another_process(tmp_path, 120)
    else:
        duckdb.connect(str(DataPaths(tmp_path).warehouse)).close()
        process = python_ready(READER, str(DataPaths(tmp_path).warehouse), "120")
    env = {"PATH": "/usr/bin:/bin", "MLOPS_DATA_DIR": str(tmp_path), "HOME": str(tmp_path),
           "MLOPS_SETTINGS": str(tmp_path / "settings.yaml"), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    try:
        done = subprocess.run([sys.executable, "-c", "from mlops_assets.cli import entry_point; entry_point()",
                               "materialize", "--select", 'key:"raw/products"'],
                              env=env, capture_output=True, text=True, timeout=300)
    finally:
        process.kill()
        process.wait()
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the run stopped before any step: "), done.stderr[-2000:]
    assert "named above" not in last and "Error" not in last
    if holder == "another run":
        assert f"in use by another run: process {process.pid}" in last and f"kill {process.pid}" in last
        assert "locks.run_wait_seconds" in last
    else:
        assert f"is held open by process {process.pid}" in last and "locks.warehouse_wait_seconds" in last
        assert "read the Parquet snapshots in exports/" in last
