"""The levels' registered model and the routing of a request between it and the series' model: real MLflow
models in a scratch store, a forecasts_by_level table made from the series' own forecasts (BottomUp adds up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server
from openapi_spec_validator import validate as validate_openapi

from mlops_assets import cli
from mlops_assets.catalog import FORECASTS, FORECASTS_BY_LEVEL, LEVELS_MODEL, key
from mlops_assets.defs.levels_model import levels_model
from mlops_assets.registry.champion_model import ChampionForecaster
from mlops_assets.registry.level_model import (
    SERIES_VERSION_TAG,
    LevelForecasts,
    default_rows,
    register_levels,
)
from mlops_assets.registry.model_registry import CHALLENGER, CHAMPION, alias_version, register_champions
from mlops_assets.serving.app import ServingConfig, create_app
from mlops_assets.serving.docs import served_document
from mlops_assets.serving.limits import RequestLimits
from mlops_assets.serving.routing import RoutedModel
from mlops_assets.settings import DATA_DIR_ENV, SETTINGS_ENV
from mlops_assets_tests.serving.test_serving import MODELS, SERIES, weekly_history

HORIZON = 6
GROUPS = {"category/A": SERIES[:4], "category/B": SERIES[4:]}
BOUNDS = ["lo_80", "hi_80", "lo_95", "hi_95"]


@pytest.fixture(scope="module")
def forecaster() -> ChampionForecaster:
    champions = pd.DataFrame({"unique_id": SERIES, "model": MODELS})
    return ChampionForecaster("W-MON", 52, HORIZON).fit(weekly_history(), champions)


def by_level(forecaster: ChampionForecaster) -> pd.DataFrame:
    """forecasts_by_level as the levels layer writes it: total, categories, products; Base and BottomUp rows."""
    series = forecaster.predict().assign(level="product")
    frames = [series]
    for node, members in [("total", SERIES), *GROUPS.items()]:
        summed = series[series["unique_id"].isin(members)].groupby("ds", as_index=False)[["y_hat", *BOUNDS]].sum()
        frames.append(summed.assign(unique_id=node, level="total" if node == "total" else "category"))
    bottom_up = pd.concat(frames, ignore_index=True).assign(method="BottomUp", base_model="AutoETS", is_default=True)
    # The unreconciled rows differ: an answer taken from them would show.
    base = bottom_up.assign(method="Base", is_default=False, y_hat=bottom_up["y_hat"] + 1000.0)
    columns = ["level", "unique_id", "ds", "method", "y_hat", *BOUNDS, "base_model", "is_default"]
    return pd.concat([base, bottom_up], ignore_index=True)[columns]


def test_a_level_id_is_answered_with_its_default_rows_up_to_h(forecaster):
    table = by_level(forecaster)
    levels = LevelForecasts(default_rows(table, "product"), (80, 95), "product", "7")
    assert levels.horizon == HORIZON
    assert set(levels.series["unique_id"]) == {"total", "category/A", "category/B"}
    request = pd.DataFrame({"unique_id": ["category/B", "total"], "h": [2, HORIZON], "level": [95.0, np.nan]})
    answer = levels.forecast(request)
    assert answer["unique_id"].tolist() == ["category/B"] * 2 + ["total"] * HORIZON
    assert answer["level"].tolist() == ["category"] * 2 + ["total"] * HORIZON
    assert set(answer["model"]) == {"BottomUp"} and set(answer["model_version"]) == {"7"}
    expected = table[table["is_default"] & table["unique_id"].isin(["category/B", "total"])]
    expected = expected.assign(ds=expected["ds"].dt.strftime("%Y-%m-%d")).set_index(["unique_id", "ds"])
    got = answer.set_index(["unique_id", "ds"])
    np.testing.assert_allclose(got["y_hat"], expected.loc[got.index, "y_hat"])
    total = got.loc["total"]
    np.testing.assert_allclose(total[BOUNDS].astype(float), expected.loc["total", BOUNDS])
    # A row that asked for the 95% interval only gets the 80% bounds null (as the series' model answers).
    assert answer.loc[answer["unique_id"] == "category/B", "lo_80"].isna().all()
    assert answer.loc[answer["unique_id"] == "category/B", "lo_95"].notna().all()


@pytest.fixture(scope="module")
def registered(forecaster, tmp_path_factory):
    """The series' model and the levels' model registered in a scratch store, both promoted."""
    root = tmp_path_factory.mktemp("levels_registry")
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("levels", artifact_location=(root / "a").as_uri()))
    try:
        champions = pd.DataFrame({"unique_id": SERIES, "model": MODELS})
        series = register_champions(forecaster, champions, name="sf", run_id=None, description="t", tags={})
        MlflowClient().set_registered_model_alias("sf", CHAMPION, series.version)
        table = by_level(forecaster)
        levels = LevelForecasts(default_rows(table, "product"), (80, 95), "product", series.version)
        registration = register_levels(levels, name="sf_levels", coherent=True, why="test", tags={})
        yield {"series": mlflow.pyfunc.load_model(f"models:/sf/{series.version}"),
               "levels": mlflow.pyfunc.load_model(f"models:/sf_levels/{registration.version}"),
               "table": table, "registration": registration, "forecasts": levels, "series_version": series.version}
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


def test_the_levels_model_answers_its_ids_through_mlflow_and_names_the_series_version(registered):
    answer = registered["levels"].predict(pd.DataFrame({"unique_id": ["category/A"], "h": [HORIZON]}))
    table = registered["table"]
    expected = table[table["is_default"] & (table["unique_id"] == "category/A")].sort_values("ds")
    np.testing.assert_allclose(answer["y_hat"], expected["y_hat"])
    assert set(answer["model_version"]) == {registered["series_version"]}
    version = MlflowClient().get_model_version("sf_levels", registered["registration"].version)
    assert version.tags[SERIES_VERSION_TAG] == registered["series_version"]
    assert alias_version("sf_levels", CHAMPION) == str(version.version)
    with pytest.raises(MlflowException, match="unknown unique_id 's0'"):
        registered["levels"].predict(pd.DataFrame({"unique_id": ["s0"], "h": [1]}))


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


def test_the_champion_alias_moves_only_when_the_levels_add_up(registered):
    forecasts = registered["forecasts"]
    shifted = LevelForecasts(forecasts.rows.assign(y_hat=forecasts.rows["y_hat"] + 1), forecasts.levels,
                             forecasts.bottom_level, forecasts.series_version)
    before = alias_version("sf_levels", CHAMPION)
    rejected = register_levels(shifted, name="sf_levels", coherent=False, why="gap 0.3", tags={})
    assert not rejected.promoted and rejected.version != before
    assert alias_version("sf_levels", CHAMPION) == before
    assert alias_version("sf_levels", CHALLENGER) == rejected.version
    again = register_levels(forecasts, name="sf_levels", coherent=True, why="test", tags={})
    assert again.reused and again.version == before


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


def test_the_levels_model_asset_is_wired_only_with_a_hierarchy(tmp_path, monkeypatch):
    monkeypatch.setenv(SETTINGS_ENV, "")
    assert not levels_model().assets
    declared = tmp_path / "settings.yaml"
    declared.write_text("hierarchy: {}\n")
    monkeypatch.setenv(SETTINGS_ENV, str(declared))
    (asset,) = levels_model().assets
    assert asset.key.to_user_string() == "/".join(key(LEVELS_MODEL))
    deps = {k.to_user_string() for k in asset.asset_deps[asset.key]}
    assert deps == {"/".join(FORECASTS_BY_LEVEL.key), "/".join(FORECASTS.key)}


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


def test_rollback_levels_moves_the_levels_champion_only(registered, tmp_path, monkeypatch):
    settings = tmp_path / "settings.yaml"
    settings.write_text(f"registered_model_name: sf\nmlflow_tracking_uri: {mlflow.get_tracking_uri()}\n")
    monkeypatch.setenv(SETTINGS_ENV, str(settings))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    current, series = alias_version("sf_levels", CHAMPION), alias_version("sf", CHAMPION)
    older = min(int(v.version) for v in MlflowClient().search_model_versions("name='sf_levels'"))
    try:
        assert cli.main(["rollback", "--levels", "--version", str(older)]) == 0
        assert (alias_version("sf_levels", CHAMPION), alias_version("sf", CHAMPION)) == (str(older), series)
    finally:
        MlflowClient().set_registered_model_alias("sf_levels", CHAMPION, current)


def test_with_the_sample_levels_the_document_is_written_after_the_levels_model():
    """The code location as `make dev` loads it with settings/sample_levels.yaml (a fresh process: the defs
    modules read the settings when they are imported)."""
    code = ("import dagster as dg\n"
            "from mlops_assets.definitions import defs\n"
            "graph = defs.resolve_asset_graph()\n"
            "print(sorted(k.to_user_string() for k in graph.get(dg.AssetKey(['registry', 'serving_openapi']))"
            ".parent_keys))\n")
    sample = Path(__file__).resolve().parents[2] / "settings" / "sample_levels.yaml"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, SETTINGS_ENV: str(sample)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(["registry/levels_model", "registry/sales_forecast_model"])
