"""A data directory copied or moved elsewhere keeps a working MLflow store of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from mlops_assets import cli
from mlops_assets.registry.relocation import relocate_store, stale_locations
from mlops_assets.settings import DATA_DIR_ENV, DataPaths
from mlops_assets.wiring.resources import build_resources


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: pd.DataFrame) -> pd.DataFrame:
        return model_input * 2


def activate(data_dir: Path) -> str:
    return build_resources(str(data_dir), "")["mlflow_tracking"].activate()


def artifact_files(data_dir: Path) -> set[str]:
    return {p.name for p in DataPaths(data_dir).mlflow_artifacts.rglob("*") if p.is_file()}


@pytest.fixture
def workspace(mlflow_scratch):
    return mlflow_scratch


@pytest.mark.slow
def test_copied_then_moved_data_directory_uses_its_own_artifacts(workspace, monkeypatch, capsys):
    original = workspace / "original"
    experiment = activate(original)
    with mlflow.start_run(experiment_id=experiment):
        mlflow.log_text("made in the original", "note_original.txt")
        info = mlflow.pyfunc.log_model(name="model", python_model=Doubler(), input_example=pd.DataFrame({"x": [1]}))
        mlflow.register_model(info.model_uri, "relocated")
    mlflow.set_tracking_uri(None)

    # Copied: without the fix, a run in the copy writes its artifacts into the original directory.
    copy = workspace / "copy"
    shutil.copytree(original, copy)
    db = DataPaths(copy).mlflow / "mlflow.db"
    assert stale_locations(db, DataPaths(copy).mlflow_artifacts) == [DataPaths(original).mlflow_artifacts.as_uri()]
    experiment = activate(copy)
    assert stale_locations(db, DataPaths(copy).mlflow_artifacts) == []
    with mlflow.start_run(experiment_id=experiment):
        mlflow.log_text("made in the copy", "note_copy.txt")
    assert "note_copy.txt" in artifact_files(copy) and "note_copy.txt" not in artifact_files(original)

    # Moved: the old place is gone; the store finds its model in the new one.
    moved = workspace / "moved"
    original.rename(moved)
    # `make serve` may come before any run: the operator relocates by hand.
    monkeypatch.setenv(DATA_DIR_ENV, str(moved))
    assert cli.main(["relocate"]) == 0
    said = capsys.readouterr().out
    assert f"MLflow artifact locations moved from {(workspace / 'original' / 'mlflow' / 'artifacts').as_uri()}" in said
    assert int(said.split()[0]) >= 4  # experiment, run, logged model, model version
    activate(moved)
    answer = mlflow.pyfunc.load_model("models:/relocated/1").predict(pd.DataFrame({"x": [3]}))
    assert answer["x"].tolist() == [6]
    assert relocate_store(DataPaths(moved).mlflow / "mlflow.db", DataPaths(moved).mlflow_artifacts) == {}
