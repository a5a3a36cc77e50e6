"""MLflow runs left RUNNING by a process that was killed, ended as FAILED by the next run.

A run of the product holds the data directory's run lock while it logs to MLflow, so when the next one
starts, no run of its experiment can still be logging: one still RUNNING belongs to a process that was
killed (registration resumes the evaluation's run, so a kill right after it leaves that run open).
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import RunStatus

ENDED_BY_TAG = "ended_by"


def end_abandoned_runs(experiment_id: str, current_dagster_run: str | None) -> list[str]:
    """End every RUNNING run of the experiment not logged by ``current_dagster_run`` as FAILED; their ids."""
    client = MlflowClient()
    ended = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'",
                                  max_results=1000, order_by=["attributes.start_time ASC"]):
        if current_dagster_run and run.data.tags.get("dagster_run_id") == current_dagster_run:
            continue
        client.set_tag(run.info.run_id, ENDED_BY_TAG,
                       f"a later run: its process stopped while it was open (Dagster run {current_dagster_run})")
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.FAILED))
        ended.append(run.info.run_id)
    return ended
