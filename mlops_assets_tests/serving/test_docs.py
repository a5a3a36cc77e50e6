"""The document registry/serving_openapi writes is the one the serving app serves, at the configured address."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from openapi_spec_validator import validate

import mlops_assets.serving.app as serving_app
from mlops_assets.registry.champion_model import ChampionForecaster
from mlops_assets.registry.model_registry import register_and_gate
from mlops_assets.serving.limits import RequestLimits
from mlops_assets.settings import load_settings
from mlops_assets.wiring.resources import build_resources
from mlops_assets_tests.conftest import materialize_all
from mlops_assets_tests.serving.test_serving import HORIZON, MODELS, SERIES, weekly_history

SETTINGS = "serving: {host: 127.0.0.1, port: 5123, max_rows: 77, max_forecast_rows: 900}\n"


@pytest.fixture
def registered(monkeypatch):
    """A data directory whose own MLflow store has a champion of the settings' model name."""
    # SQLite on tmpfs: creating an MLflow database runs ~100 migrations, each an fsync.
    data_dir = Path(tempfile.mkdtemp(prefix="docs-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings_file = data_dir / "settings.yaml"
    settings_file.write_text(SETTINGS)
    experiment = build_resources(str(data_dir), str(settings_file))["mlflow_tracking"].activate()
    champions = pd.DataFrame({"unique_id": SERIES, "model": MODELS, "smape": np.linspace(5, 12, len(SERIES))})
    forecaster = ChampionForecaster("W-MON", 52, HORIZON).fit(weekly_history(), champions)
    with mlflow.start_run(experiment_id=experiment):
        register_and_gate(forecaster, champions, champions.assign(mae=1.0), name=load_settings(settings_file)
                          .registered_model_name, run_id=None, description="docs test", tags={}, tolerance=0)
    yield data_dir, settings_file
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    shutil.rmtree(data_dir, ignore_errors=True)


def test_the_written_document_names_the_configured_address_and_limits_and_is_what_the_app_serves(registered):
    data_dir, settings_file = registered
    result = materialize_all(data_dir, str(settings_file), selection=dg.AssetSelection.assets(["registry",
                                                                                               "serving_openapi"]))
    assert result.success
    written = json.loads((data_dir / "serving" / "openapi.json").read_text())
    validate(written)
    assert written["servers"] == [{"url": "http://127.0.0.1:5123"}]
    assert "77 rows, 900 forecast rows" in written["info"]["description"]
    assert {"/invocations", "/ping", "/version", "/metrics"} <= set(written["paths"])

    # The app started with the same settings answers /openapi.json with the same document.
    serving = load_settings(settings_file).serving
    config = serving_app.ServingConfig(load_settings(settings_file).registered_model_name, serving.url,
                                       data_dir / "logs", RequestLimits.of(serving), poll_seconds=3600)

    async def served() -> dict:
        application = serving_app.create_app(config)
        async with application.router.lifespan_context(application):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application),
                                         base_url="http://testserver") as client:
                return (await client.get("/openapi.json")).json()

    assert asyncio.run(served()) == written
