from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import mlflow
import pytest


@pytest.fixture
def mlflow_scratch(monkeypatch):
    """An empty folder for data directories with their own MLflow store, on tmpfs when there is one: creating
    an MLflow database runs ~100 migrations, each an fsync."""
    root = Path(tempfile.mkdtemp(prefix="mlflow-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield root
    # activate() points the process's tracking and registry URIs at stores this fixture deletes.
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    shutil.rmtree(root, ignore_errors=True)
