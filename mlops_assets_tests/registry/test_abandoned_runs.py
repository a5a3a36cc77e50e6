"""An MLflow run left RUNNING by a killed process is ended as FAILED when the next run uses MLflow."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from mlops_assets.registry.abandoned_runs import ENDED_BY_TAG
from mlops_assets.wiring.resources import build_resources


@pytest.fixture
def data_dir(mlflow_scratch):
    return mlflow_scratch


def test_a_run_left_running_by_a_killed_process_is_ended_as_failed(data_dir):
    first = build_resources(str(data_dir), "")["mlflow_tracking"]
    experiment = first.activate()
    client = MlflowClient()
    # What a kill leaves: the registration step resumed the evaluation's run and never ended it.
    killed = client.create_run(experiment, tags={"dagster_run_id": "killed-run"}).info.run_id
    ongoing = client.create_run(experiment, tags={"dagster_run_id": "this-run"}).info.run_id
    finished = client.create_run(experiment, tags={"dagster_run_id": "earlier-run"}).info.run_id
    client.set_terminated(finished)

    later = build_resources(str(data_dir), "")["mlflow_tracking"]
    later._run_id = "this-run"  # as setup_for_execution sets it for a Dagster run
    later.activate()

    assert client.get_run(killed).info.status == "FAILED"
    assert "stopped while it was open" in client.get_run(killed).data.tags[ENDED_BY_TAG]
    assert client.get_run(ongoing).info.status == "RUNNING"  # the run's own, earlier steps: left alone
    assert client.get_run(finished).info.status == "FINISHED"
