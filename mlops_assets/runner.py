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

from mlops_assets.logs import quiet_third_party, raised_error
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


def why_failed(result: dg.ExecuteInProcessResult) -> str:
    """What a failed run's last line says: the steps that failed, or why the run stopped before any step.

    A run stops before its first step when a resource cannot start: the run lock held by another run
    (DataDirectoryBusy) or the warehouse held open by a reader (WarehouseBusy). Their message names the
    holder's pid and what to do; Dagster wraps it in its own error, which the console does not show.
    """
    failed = sorted({e.step_key for e in result.all_events if e.is_step_failure and e.step_key})
    if failed:
        return (f"the run failed at {', '.join(failed)} (the reason is on the step's FAILED line above); its "
                "log in the Dagster UI (make dev)")
    reasons = []
    for event in result.all_events:
        if event.event_type_value in ("RESOURCE_INIT_FAILURE", "PIPELINE_FAILURE", "RUN_FAILURE"):
            error = getattr(event.event_specific_data, "error", None)
            if error is not None and (reason := _without_class(raised_error(error))) not in reasons:
                reasons.append(reason)
    if not reasons:
        return "the run failed before any step; its log in the Dagster UI (make dev)"
    return "the run stopped before any step: " + " ".join(reasons)


def _without_class(error) -> str:
    """``package.Class: message`` as the message alone."""
    message = error.message.strip()
    head, _, rest = message.partition(": ")
    return rest if rest and head.rsplit(".", 1)[-1] == error.cls_name else message
