"""One endpoint for every level: a request's series ids answered by the series' model, its level ids by the
levels' model (serving.routing), in MLflow's scoring app and in the serving app that follows both aliases."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from mlflow.pyfunc import scoring_server
from openapi_spec_validator import validate as validate_openapi

from mlops_assets.registry.level_model import LevelForecasts, register_levels
from mlops_assets.registry.model_registry import CHAMPION, alias_version
from mlops_assets.serving.app import ServingConfig, create_app
from mlops_assets.serving.docs import served_document
from mlops_assets.serving.limits import RequestLimits
from mlops_assets.serving.routing import RoutedModel
from mlops_assets_tests.levels_served import HORIZON, SERIES, fitted, registered_models


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    with registered_models(fitted(), tmp_path_factory.mktemp("levels_registry")) as models:
        yield models


def test_a_mixed_request_is_routed_and_every_row_says_its_level(registered):
    routed = RoutedModel(registered["series"], registered["levels"])
    request = pd.DataFrame({"unique_id": ["total", "s3", "category/A", "s3"], "h": [2, 3, 1, 1]})
    answer = routed.predict(request)
    assert answer["unique_id"].tolist() == ["total"] * 2 + ["s3"] * 3 + ["category/A"] + ["s3"]
    assert answer["level"].tolist() == ["total"] * 2 + ["product"] * 3 + ["category"] + ["product"]
    # A series answers exactly as the series' model alone does.
    alone = registered["series"].predict(pd.DataFrame({"unique_id": ["s3"], "h": [3]}))
    pd.testing.assert_frame_equal(answer.iloc[2:5].drop(columns="level").reset_index(drop=True),
                                  alone[answer.columns.drop("level")])
    table = registered["table"]
    total = table[table["is_default"] & (table["unique_id"] == "total")].sort_values("ds").head(2)
    np.testing.assert_allclose(answer["y_hat"].iloc[:2], total["y_hat"])
    # BottomUp adds up: the total's first period is the sum of the series' first periods.
    firsts = registered["series"].predict(pd.DataFrame({"unique_id": SERIES, "h": [1] * len(SERIES)}))
    assert answer["y_hat"].iloc[0] == pytest.approx(firsts["y_hat"].sum())


def test_over_http_an_unknown_id_is_a_400_naming_its_row_and_a_level_id_a_200(registered):
    client = TestClient(scoring_server.init(RoutedModel(registered["series"], registered["levels"])))
    refused = client.post("/invocations", json={"dataframe_records": [{"unique_id": "total", "h": 1},
                                                                      {"unique_id": "category/Z", "h": 1}]})
    assert refused.status_code == 400
    assert "unknown unique_id 'category/Z' in row 1" in refused.json()["message"]
    beyond = client.post("/invocations", json={"dataframe_records": [{"unique_id": "total", "h": HORIZON + 1}]})
    assert beyond.status_code == 400 and "beyond the trained horizon" in beyond.json()["message"]
    answered = client.post("/invocations", json={"dataframe_split": {"columns": ["unique_id", "h"],
                                                                       "data": [["category/B", 2], ["s0", 1]]}})
    assert answered.status_code == 200
    rows = answered.json()["predictions"]
    assert [(r["unique_id"], r["level"]) for r in rows] == [("category/B", "category")] * 2 + [("s0", "product")]
    # One interval level per row: the other level's bounds are null in both models' parts.
    narrowed = client.post("/invocations", json={"dataframe_split": {
        "columns": ["unique_id", "h", "level"], "data": [["category/B", 2, 80], ["s0", 1, 95]]}})
    assert narrowed.status_code == 200, narrowed.text
    rows = narrowed.json()["predictions"]
    assert [r["lo_95"] is None and r["lo_80"] is not None for r in rows] == [True, True, False], json.dumps(rows)
    assert rows[2]["lo_80"] is None and rows[2]["lo_95"] is not None


def test_the_openapi_document_names_level_ids_and_the_answers_level(registered):
    registration = registered["registration"]
    document = served_document("sf", registered["series_version"], "http://127.0.0.1:5001", RequestLimits(),
                               ("sf_levels", registration.version))
    validate_openapi(document)
    schemas = document["components"]["schemas"]
    assert "level" in schemas["Prediction"]["required"]
    assert "category/A" in schemas["Row"]["properties"]["unique_id"]["description"]
    examples = document["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert examples["level ids"]["value"]["dataframe_records"][0]["unique_id"] == "category/A"
    series_only = served_document("sf", registered["series_version"], "http://127.0.0.1:5001", RequestLimits())
    assert "level" not in series_only["components"]["schemas"]["Prediction"]["properties"]


def test_the_app_follows_the_levels_champion_and_answers_series_only_without_one(registered, tmp_path):
    config = ServingConfig(model_name="sf", server_url="http://127.0.0.1:5001", log_folder=tmp_path / "logs",
                           poll_seconds=0.2, levels_model_name="sf_levels")
    forecasts = registered["forecasts"]
    with TestClient(create_app(config)) as client:
        before = client.post("/invocations", json={"dataframe_records": [{"unique_id": "total", "h": 1}]})
        assert before.headers["X-Levels-Model-Version"] == alias_version("sf_levels", CHAMPION)
        doubled = LevelForecasts(forecasts.rows.assign(y_hat=forecasts.rows["y_hat"] * 2), forecasts.levels,
                                 forecasts.bottom_level, forecasts.series_version)
        moved = register_levels(doubled, name="sf_levels", coherent=True, why="test", tags={"copy": "doubled"})
        try:
            deadline = time.monotonic() + 30
            while client.get("/version").json()["levels_model_version"] != moved.version:
                assert time.monotonic() < deadline, "the app did not follow the levels' champion alias"
                time.sleep(0.2)
            after = client.post("/invocations", json={"dataframe_records": [{"unique_id": "total", "h": 1}]})
            assert after.headers["X-Levels-Model-Version"] == moved.version
            first, second = before.json()["predictions"][0], after.json()["predictions"][0]
            assert second["y_hat"] == pytest.approx(2 * first["y_hat"])
        finally:
            MlflowClient().set_registered_model_alias("sf_levels", CHAMPION, before.headers["X-Levels-Model-Version"])
    # The levels' model not followed (no hierarchy declared): the series' answer as before levels, no level column.
    series_only = ServingConfig(model_name="sf", server_url="http://127.0.0.1:5001", log_folder=tmp_path / "logs2")
    with TestClient(create_app(series_only)) as client:
        answer = client.post("/invocations", json={"dataframe_records": [{"unique_id": "s1", "h": 2}]})
        assert answer.status_code == 200 and "X-Levels-Model-Version" not in answer.headers
        assert "level" not in answer.json()["predictions"][0]
        assert client.post("/invocations", json={"dataframe_records": [{"unique_id": "total", "h": 1}]}
                           ).status_code == 400


def test_a_levels_version_that_cannot_load_leaves_the_series_served(registered, tmp_path):
    client = MlflowClient()
    good = alias_version("sf_levels", CHAMPION)
    broken = client.create_model_version("sf_levels", (tmp_path / "gone").as_uri(), tags={"case": "files missing"})
    client.set_registered_model_alias("sf_levels", CHAMPION, broken.version)
    config = ServingConfig(model_name="sf", server_url="http://127.0.0.1:5001", log_folder=tmp_path / "logs",
                           poll_seconds=60, levels_model_name="sf_levels")
    try:
        with TestClient(create_app(config)) as app:
            assert app.post("/invocations", json={"dataframe_records": [{"unique_id": "s2", "h": 1}]}
                            ).status_code == 200
            assert app.post("/invocations", json={"dataframe_records": [{"unique_id": "total", "h": 1}]}
                            ).status_code == 400
            assert "levels_model_version" not in app.get("/version").json()
    finally:
        client.set_registered_model_alias("sf_levels", CHAMPION, good)
