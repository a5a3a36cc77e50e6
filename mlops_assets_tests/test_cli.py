"""`mlops-assets rollback` moves the champion alias only while it holds the data directory's run lock."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlops_assets import cli, run_lock
from mlops_assets.registry.model_registry import CHAMPION, alias_version
from mlops_assets.settings import DATA_DIR_ENV, SETTINGS_ENV, DataPaths
from mlops_assets_tests.test_run_lock import hold_in_another_process

NAME = "sales_forecast"


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: pd.DataFrame) -> pd.DataFrame:
        return model_input * 2


@pytest.fixture(scope="module")
def store() -> Path:
    """A data directory whose MLflow registry has versions 1 and 2 of the model (15 s to build under load)."""
    # SQLite on tmpfs: creating an MLflow database runs ~100 migrations, each an fsync.
    data_dir = Path(tempfile.mkdtemp(prefix="cli-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        uri = DataPaths(data_dir).mlflow_tracking_uri
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        experiment = mlflow.create_experiment("cli", artifact_location=(data_dir / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.pyfunc.log_model(name="model", python_model=Doubler())
        for _ in range(2):
            mlflow.register_model(info.model_uri, NAME)
        yield data_dir
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def registry(store, monkeypatch) -> Path:
    """That data directory as MLOPS_DATA_DIR, with the champion at version 2."""
    monkeypatch.setenv(DATA_DIR_ENV, str(store))
    MlflowClient().set_registered_model_alias(NAME, CHAMPION, "2")
    return store


def _wait_setting(data_dir: Path, seconds: float, monkeypatch) -> None:
    settings = data_dir / "settings.yaml"
    settings.write_text(f"locks: {{run_wait_seconds: {seconds}}}\n")
    monkeypatch.setenv(SETTINGS_ENV, str(settings))


@pytest.mark.slow
def test_rollback_is_refused_while_a_run_holds_the_data_directory(registry, monkeypatch, capsys):
    _wait_setting(registry, 0.5, monkeypatch)
    holder = hold_in_another_process(registry, 120)
    try:
        assert cli.main(["rollback", "--version", "1"]) == 2
    finally:
        holder.kill()
        holder.wait()
    said = capsys.readouterr().err
    assert f"in use by another run: process {holder.pid}" in said and "Dagster run other-run" in said
    assert "locks.run_wait_seconds" in said and f"kill {holder.pid}" in said
    assert alias_version(NAME, CHAMPION) == "2"


@pytest.mark.slow
def test_rollback_waits_for_the_run_then_moves_the_alias(registry, monkeypatch, capsys):
    _wait_setting(registry, 120, monkeypatch)
    holder = hold_in_another_process(registry, 2)
    started = time.monotonic()
    try:
        assert cli.main(["rollback", "--version", "1"]) == 0
    finally:
        holder.kill()
        holder.wait()
    assert time.monotonic() - started >= 1.5  # it waited for the holder's two seconds
    said = capsys.readouterr()
    assert f"in use by another run (process {holder.pid}" in said.err and "waiting up to 120 s" in said.err
    assert "now points at version 1 (was 2)" in said.out
    assert alias_version(NAME, CHAMPION) == "1"
    assert run_lock.holder(registry) is None  # released once the alias moved


def test_rollback_to_a_version_whose_files_are_gone_is_refused(registry, capsys):
    experiment = mlflow.get_experiment_by_name("cli").experiment_id
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(name="model", python_model=Doubler())
    gone = mlflow.register_model(info.model_uri, NAME).version
    shutil.rmtree(Path(urlparse(mlflow.get_logged_model(info.model_id).artifact_location).path))
    assert cli.main(["rollback", "--version", str(gone)]) == 2
    said = capsys.readouterr().err
    assert f"cannot roll '{NAME}' back to version {gone}: its model files are missing" in said, said
    assert "the champion alias was not moved" in said and "Traceback" not in said
    assert alias_version(NAME, CHAMPION) == "2"
