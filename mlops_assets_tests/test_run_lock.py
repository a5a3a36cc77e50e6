"""One run at a time per data directory: the lock across processes, and Dagster runs that wait or refuse."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets import run_lock
from mlops_assets.run_lock import DataDirectoryBusy
from mlops_assets_tests.conftest import materialize_all, python_ready

# Another process (another run) takes the lock, says so, holds it for argv[2] seconds, then exits.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from mlops_assets import run_lock
    run_lock.acquire(sys.argv[1], owner="Dagster run other-run", wait_seconds=0)
    print("ready", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)
PRODUCTS = dg.AssetSelection.assets(["raw", "products"])


def hold_in_another_process(data_dir: Path, seconds: float) -> subprocess.Popen:
    return python_ready(HOLDER, str(data_dir), str(seconds))


def test_second_holder_waits_then_is_refused_with_the_holders_name(tmp_path):
    holder = hold_in_another_process(tmp_path, 60)
    try:
        started = time.monotonic()
        heard = []
        with pytest.raises(DataDirectoryBusy) as refused:
            run_lock.acquire(tmp_path, owner="Dagster run mine", wait_seconds=0.6, on_wait=heard.append)
        assert 0.6 <= time.monotonic() - started < 5
        message = str(refused.value)
        assert f"process {holder.pid}" in message and "Dagster run other-run" in message
        assert f"kill {holder.pid}" in message and "locks.run_wait_seconds" in message
        assert len(heard) == 1 and "waiting up to 0.6 s" in heard[0]
        assert run_lock.holder(tmp_path)["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    # A killed holder releases the lock with its process: nobody is left to clean up.
    assert run_lock.holder(tmp_path) is None
    run_lock.acquire(tmp_path, owner="Dagster run mine", wait_seconds=0)
    run_lock.release(tmp_path, owner="Dagster run mine")


def test_one_run_holds_it_many_times_and_other_runs_in_the_process_wait(tmp_path):
    run_lock.acquire(tmp_path, owner="run a", wait_seconds=0)
    run_lock.acquire(tmp_path, owner="run a", wait_seconds=0)  # a second resource of the same run
    with pytest.raises(DataDirectoryBusy, match="run a"):
        run_lock.acquire(tmp_path, owner="run b", wait_seconds=0.3)
    run_lock.release(tmp_path, owner="run a")
    assert run_lock.holder(tmp_path)["owner"] == "run a"
    threading.Timer(0.5, run_lock.release, args=(tmp_path,), kwargs={"owner": "run a"}).start()
    run_lock.acquire(tmp_path, owner="run b", wait_seconds=10)  # freed by the last release of run a
    assert run_lock.holder(tmp_path)["owner"] == "run b"
    run_lock.release(tmp_path, owner="run b")
    assert run_lock.holder(tmp_path) is None


@pytest.fixture
def data_dir(small_sample, tmp_path) -> Path:
    shutil.copytree(small_sample / "landing", tmp_path / "landing")
    return tmp_path


def _settings(data_dir: Path, wait: float) -> str:
    path = data_dir / "settings.yaml"
    path.write_text(f"locks: {{run_wait_seconds: {wait}}}\n")
    return str(path)


def test_dagster_run_refuses_while_another_run_holds_the_data_directory(data_dir):
    holder = hold_in_another_process(data_dir, 120)
    try:
        result = materialize_all(data_dir, _settings(data_dir, 0.5), selection=PRODUCTS, raise_on_error=False)
    finally:
        holder.kill()
        holder.wait()
    assert not result.success
    errors = [str(getattr(e.event_specific_data, "error", "")) for e in result.all_events]
    assert any(f"in use by another run: process {holder.pid}" in error for error in errors)
    # Refused before writing anything.
    assert not (data_dir / "warehouse.duckdb").exists() and not (data_dir / "exports").exists()


def test_dagster_run_waits_for_the_other_run_then_goes_on(data_dir):
    holder = hold_in_another_process(data_dir, 600)
    instance = dg.DagsterInstance.ephemeral()
    outcome = {}
    run = threading.Thread(target=lambda: outcome.update(result=materialize_all(
        data_dir, _settings(data_dir, 300), instance=instance, selection=PRODUCTS
    )))
    run.start()
    try:
        # The other run ends only once this one has said that it waits for it.
        deadline = time.monotonic() + 240
        while not _logged(instance, f"in use by another run (process {holder.pid}"):
            assert run.is_alive() and time.monotonic() < deadline, "the run did not wait for the other run"
            time.sleep(0.2)
    finally:
        holder.kill()
        holder.wait()
    run.join(timeout=300)
    assert outcome["result"].success
    assert (data_dir / "exports" / "raw" / "products.parquet").exists()
    assert run_lock.holder(data_dir) is None  # released at the end of the run


def _logged(instance: dg.DagsterInstance, text: str) -> bool:
    return any(text in (e.message or "") for r in instance.get_runs() for e in instance.all_logs(r.run_id))
