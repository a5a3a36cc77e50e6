"""Level ids over HTTP: the sample through the real graph with total / category / brand / product declared, the
levels' model registered beside the series' model, and `python -m mlops_assets.serving.app` (what `make serve`
runs) on a free port answering a category, the total and a product in one request, each row naming its level."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from mlops_assets.catalog import FORECAST_ACCURACY, FORECAST_HISTORY, SERVED_FORECASTS, SERVING_REQUESTS
from mlops_assets.definitions import ASSETS, CHECKS
from mlops_assets.devtools.processes import free_port, server_answering
from mlops_assets.wiring.resources import build_resources
from mlops_assets_tests.conftest import read_table, with_levels
from mlops_assets_tests.serving.test_app import assert_no_server_error_found

pytestmark = pytest.mark.e2e
HORIZON = 4


def test_the_endpoint_answers_level_ids_with_the_reconciled_default_and_says_each_rows_level(small_sample, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(small_sample / "landing", data_dir / "landing")
    settings = {"horizon": HORIZON, "backtest": {"windows": 2}, "models": ["Naive", "SeasonalNaive", "WindowAverage"],
                "plots": {"max_series": 0}, "hierarchy": {"levels": [["category"], ["category", "brand"]]}}
    settings_file = data_dir / "settings.yaml"
    settings_file.write_text(yaml.safe_dump(settings))
    result = dg.materialize(
        with_levels(),
        resources=build_resources(str(data_dir), str(settings_file), landing_settle_seconds=0.0),
        instance=dg.DagsterInstance.ephemeral(),
        selection=dg.AssetSelection.all() - dg.AssetSelection.groups("monitoring"),
    )
    assert result.success
    registered = result.asset_materializations_for_node("registry__levels_model")[0].metadata
    assert registered["promoted"].value, registered["promotion_reason"].value
    forecasts = read_table(data_dir, "forecasting.forecasts")
    series_version = str(forecasts["model_version"].iloc[0])
    assert registered["series_model_version"].value == series_version

    by_level = read_table(data_dir, "forecasting.forecasts_by_level")
    default = by_level[by_level["is_default"]]
    category = sorted(default.loc[default["level"] == "category", "unique_id"])[0]
    product = sorted(forecasts["unique_id"])[0]

    port = free_port()
    command = [sys.executable, "-m", "mlops_assets.serving.app", "--port", str(port), "--poll-seconds", "60"]
    env = {"MLOPS_DATA_DIR": str(data_dir), "MLOPS_SETTINGS": str(settings_file),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    base = f"http://127.0.0.1:{port}"
    with server_answering(command, cwd=data_dir, env={**os.environ, **env}, log_path=data_dir / "server.log",
                          ping_url=f"{base}/ping", timeout=120):
        body = {"dataframe_records": [{"unique_id": category, "h": HORIZON}, {"unique_id": product, "h": 2},
                                      {"unique_id": "total", "h": 1}]}
        answer = requests.post(f"{base}/invocations", json=body, timeout=60)
        unknown = requests.post(f"{base}/invocations", json={"dataframe_records": [
            {"unique_id": "total", "h": 1}, {"unique_id": "category/nowhere", "h": 1}]}, timeout=60)
        version = requests.get(f"{base}/version", timeout=10).json()
        document = requests.get(f"{base}/openapi.json", timeout=60).json()
        # Level ids are routed outside MLflow's schema enforcement: generated requests must find no 500 there.
        assert_no_server_error_found(base, tmp_path)

    assert answer.status_code == 200, answer.text
    rows = pd.DataFrame(answer.json()["predictions"])
    assert rows["unique_id"].tolist() == [category] * HORIZON + [product] * 2 + ["total"]
    assert rows["level"].tolist() == ["category"] * HORIZON + ["product"] * 2 + ["total"]
    assert set(rows["model_version"]) == {series_version}
    assert answer.headers["X-Model-Version"] == series_version
    assert answer.headers["X-Levels-Model-Version"] == registered["version"].value

    # A level id: exactly the default rows of forecasts_by_level.
    nodes = rows[rows["level"] != "product"].set_index(["unique_id", "ds"])
    expected = default.assign(ds=default["ds"].dt.strftime("%Y-%m-%d")).set_index(["unique_id", "ds"])
    bounds = ["y_hat", "lo_80", "hi_80", "lo_95", "hi_95"]
    np.testing.assert_allclose(nodes[bounds].astype(float), expected.loc[nodes.index, bounds], rtol=1e-12)
    assert (nodes["model"] == expected.loc[nodes.index, "method"]).all()
    # A series id: its champion's forecast, as forecasting.forecasts holds it.
    series = rows[rows["level"] == "product"].set_index("ds")
    stored = forecasts[forecasts["unique_id"] == product].assign(ds=lambda f: f["ds"].dt.strftime("%Y-%m-%d"))
    np.testing.assert_allclose(series["y_hat"], stored.set_index("ds").loc[series.index, "y_hat"], rtol=1e-9)

    assert unknown.status_code == 400 and "unknown unique_id 'category/nowhere' in row 1" in unknown.json()["message"]
    assert version["levels_model_version"] == registered["version"].value
    assert "level" in document["components"]["schemas"]["Prediction"]["properties"]

    # The inference log, level ids and all, is read by monitoring as before.
    logged = [dg.AssetKey(t.key) for t in (SERVING_REQUESTS, SERVED_FORECASTS, FORECAST_HISTORY, FORECAST_ACCURACY)]
    monitored = dg.materialize([*ASSETS, *CHECKS], selection=logged, instance=dg.DagsterInstance.ephemeral(),
                               resources=build_resources(str(data_dir), str(settings_file), landing_settle_seconds=0.0))
    assert monitored.success
    served = read_table(data_dir, "monitoring.served_forecasts")
    assert {category, product, "total"} <= set(served["unique_id"])
