"""`mlops-assets materialize`: run (part of) the graph from a shell, recorded in DAGSTER_HOME, quietly.

The same as `dagster asset materialize -m mlops_assets.definitions --select ...`, without the deprecation
warnings that command prints and with a step count: `[ 7/31] gold_tables: ...`. Runs land in the
instance at DAGSTER_HOME (default `<data dir>/dagster_home`), so `dagster dev` later sees what was done and
does not do it again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

from mlops_assets.logs import quiet_third_party
from mlops_assets.settings import DataPaths

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"


def dagster_home(paths: DataPaths) -> Path:
    """DAGSTER_HOME, or ``<data dir>/dagster_home`` (created, with the repository's dagster.yaml) when unset."""
    home = Path(os.environ.get("DAGSTER_HOME") or paths.root / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and REPO_DAGSTER_YAML.exists():
        shutil.copy(REPO_DAGSTER_YAML, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def materialize(select: str = "*", paths: DataPaths | None = None) -> dg.ExecuteInProcessResult:
    """Materialize the assets (and their checks) that ``select`` names, in one run of the instance."""
    quiet_third_party()
    paths = paths or DataPaths.from_env()
    home = dagster_home(paths)
    from mlops_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    selection = dg.AssetSelection.from_string(select)
    keys, checks = selection.resolve(graph), selection.resolve_checks(graph)
    if not keys:
        raise ValueError(f"--select {select!r} names no asset; e.g. '*', 'group:gold', 'key:\"gold/*\"'")
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(keys), asset_check_selection=set(checks)
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return job.execute_in_process(
            instance=instance,
            run_config={"loggers": {"console": {"config": {"total_steps": len(job.graph.node_dict)}}}},
            raise_on_error=False,
        )
