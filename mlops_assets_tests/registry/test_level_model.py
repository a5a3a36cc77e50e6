"""The levels' registered model: its answers are forecasts_by_level's default rows, its champion alias moves only
when they add up, a rollback moves it back; the asset is wired only with a hierarchy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

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
from mlops_assets.registry.model_registry import CHALLENGER, CHAMPION, alias_version
from mlops_assets.settings import DATA_DIR_ENV, SETTINGS_ENV
from mlops_assets_tests.levels_served import BOUNDS, HORIZON, by_level, fitted, registered_models


@pytest.fixture(scope="module")
def forecaster() -> ChampionForecaster:
    return fitted()


@pytest.fixture(scope="module")
def registered(forecaster, tmp_path_factory):
    with registered_models(forecaster, tmp_path_factory.mktemp("levels_registry")) as models:
        yield models


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


def test_the_levels_model_asset_is_wired_only_with_a_hierarchy(tmp_path, monkeypatch):
    off = tmp_path / "off.yaml"
    off.write_text("hierarchy: null\n")
    monkeypatch.setenv(SETTINGS_ENV, str(off))
    assert not levels_model().assets
    declared = tmp_path / "settings.yaml"
    declared.write_text("hierarchy: {}\n")
    monkeypatch.setenv(SETTINGS_ENV, str(declared))
    (asset,) = levels_model().assets
    assert asset.key.to_user_string() == "/".join(key(LEVELS_MODEL))
    deps = {k.to_user_string() for k in asset.asset_deps[asset.key]}
    assert deps == {"/".join(FORECASTS_BY_LEVEL.key), "/".join(FORECASTS.key)}


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
