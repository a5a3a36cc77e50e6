"""Shared fixtures: a sample landing zone in a temporary data directory and a real Dagster instance."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.sample_data import generate_sample
from mlops_assets.wiring.resources import build_resources

# Small real datasets inside the repository (provenance and licence in data/README.md): a clone has no ../shared.
VENDORED_DATA = Path(__file__).resolve().parent / "data"
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


def materialize_all(data_dir: Path, settings_file: str = "", instance: dg.DagsterInstance | None = None,
                    selection: str | dg.AssetSelection = "*", raise_on_error: bool = True) -> dg.ExecuteInJobResult:
    """Materialize the graph (default: all of it) with the resources a deployment would build."""
    from mlops_assets.definitions import ASSETS, CHECKS

    return dg.materialize(
        [*ASSETS, *CHECKS],
        # The tests write whole files before they materialize: no file is still being written.
        resources=build_resources(str(data_dir), settings_file, landing_settle_seconds=0.0),
        instance=instance,
        selection=selection,
        raise_on_error=raise_on_error,
    )


def with_levels() -> list:
    """The graph with every levels' definition wired once (mlops_assets.definitions.with_every_level)."""
    from mlops_assets.definitions import with_every_level

    return with_every_level()


def read_table(data_dir: Path, table: str):
    """A warehouse table of ``data_dir`` as a frame, read on a read-only connection."""
    import duckdb

    from mlops_assets.settings import DataPaths

    with duckdb.connect(str(DataPaths(data_dir).warehouse), read_only=True) as con:
        return con.execute(f"select * from {table}").df()


def python_ready(code: str, *args: str) -> subprocess.Popen:
    """Run ``python -c code args`` and return once it prints ``ready`` (it then holds what it took)."""
    process = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip()
    if line != "ready":
        process.kill()
        raise RuntimeError(f"helper process did not get ready: {line!r}, exit code {process.wait()}")
    return process


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory) -> Path:
    """A data directory whose landing zone holds a small sample: 20 products, 8 customers."""
    data_dir = tmp_path_factory.mktemp("sample_data")
    generate_sample(data_dir / "landing", n_products=20, n_customers=8, seed=7)
    return data_dir


@pytest.fixture(scope="session")
def dask_scheduler():
    """One real two-worker Dask cluster for the session, reached by address like a user's existing scheduler.

    Only tests marked ``dask`` ask for it, so the fast tier (``make test-fast``) never starts a cluster.
    """
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        yield cluster.scheduler_address


# The zoo's fastest models, for tests of what a run publishes rather than of accuracy.
FAST_ZOO = "models: [Naive, SeasonalNaive, HistoricAverage, CrostonOptimized, AutoTheta]\n"


@dataclass(frozen=True)
class SampleRun:
    data_dir: Path
    # Empty: the product's defaults (its zoo, global model and combination included).
    settings: Path
    instance: dg.DagsterInstance
    result: dg.ExecuteInJobResult


@pytest.fixture(scope="session")
def sample_run(small_sample, tmp_path_factory) -> SampleRun:
    """The small sample through the whole graph once, with the default settings, on an instance of its own.

    One run for every test that reads what a run published or what it logged: on the small sample the
    default zoo costs no more than the fast one. A test that writes must take its own copy; the one
    exception, test_rerun_is_idempotent, reruns it and asserts that nothing changes.
    """
    data_dir = tmp_path_factory.mktemp("materialized_sample")
    shutil.copytree(small_sample / "landing", data_dir / "landing")
    settings = data_dir / "settings.yaml"
    settings.write_text("# the defaults\n")
    instance = dg.DagsterInstance.local_temp(str(tmp_path_factory.mktemp("materialized_sample_home")))
    result = materialize_all(data_dir, str(settings), instance=instance)
    assert result.success
    return SampleRun(data_dir, settings, instance, result)


@pytest.fixture(scope="session")
def materialized_sample(sample_run) -> tuple[Path, Path]:
    """sample_run's (data directory, settings file)."""
    return sample_run.data_dir, sample_run.settings
