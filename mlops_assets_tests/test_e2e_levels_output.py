"""Every level in the tables people read, through the real graph: the small sample with total / category / brand /
product declared, its coherent forecast in serving.sales_overall_by_level beside each node's actuals (a PNG per
group), issued to monitoring.forecast_history_by_level, then scored per level once two more weeks of orders land."""

from __future__ import annotations

import shutil
from datetime import date

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_assets.catalog import (
    EVALUATION_BY_LEVEL,
    FORECAST_ACCURACY_BY_LEVEL,
    FORECAST_HISTORY_BY_LEVEL,
    FORECASTS,
    FORECASTS_BY_LEVEL,
    GOLD,
    SALES_OVERALL_BY_LEVEL,
)
from mlops_assets.sample_data import write_new_week
from mlops_assets.settings import DataPaths
from mlops_assets.wiring.resources import build_resources
from mlops_assets_tests.conftest import read_table, with_levels

pytestmark = pytest.mark.e2e

GOLD_CHAIN = dg.AssetSelection.groups("raw", "gold") - dg.AssetSelection.keys(["gold", "regressors"])
# The levels read the series' backtest, champions and served forecasts: the chain through them.
SERIES_CHAIN = dg.AssetSelection.keys(FORECASTS.key).upstream()


def _materialize(data_dir, settings_file, selection) -> dg.ExecuteInJobResult:
    return dg.materialize(with_levels(),
                          resources=build_resources(str(data_dir), str(settings_file), landing_settle_seconds=0.0),
                          instance=dg.DagsterInstance.ephemeral(), selection=selection)


def _sums(gold: pd.DataFrame, column: str | None) -> pd.DataFrame:
    keys = ["ds"] if column is None else [column, "ds"]
    return gold.groupby(keys, as_index=False)["y"].sum()


def test_every_level_is_served_issued_and_scored_when_its_actuals_arrive(small_sample, tmp_path):
    shutil.copytree(small_sample / "landing", tmp_path / "landing")
    settings = {"horizon": 4, "backtest": {"windows": 2}, "models": ["Naive", "SeasonalNaive", "WindowAverage"],
                "hierarchy": {"levels": [["category"], ["category", "brand"]]}}
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(yaml.safe_dump(settings))
    outputs = dg.AssetSelection.keys(SALES_OVERALL_BY_LEVEL.key, FORECAST_HISTORY_BY_LEVEL.key,
                                     FORECAST_ACCURACY_BY_LEVEL.key)
    first = _materialize(tmp_path, settings_file, SERIES_CHAIN | outputs | dg.AssetSelection.keys(
        FORECASTS_BY_LEVEL.key, EVALUATION_BY_LEVEL.key))
    assert first.success
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in first.get_asset_check_evaluations()}
    for table in (SALES_OVERALL_BY_LEVEL, FORECAST_HISTORY_BY_LEVEL, FORECAST_ACCURACY_BY_LEVEL):
        assert checks["/".join(table.key), "matches_contract"], table

    gold = read_table(tmp_path, GOLD.name)
    overall = read_table(tmp_path, SALES_OVERALL_BY_LEVEL.name)
    forecasts = read_table(tmp_path, FORECASTS_BY_LEVEL.name)
    assert set(overall["level"]) == {"total", "category", "category/brand", "product"}
    assert set(overall["unique_id"]) == set(forecasts["unique_id"])
    train = overall[overall["origin"] == "Train"]
    total = train[train["unique_id"] == "total"].set_index("ds")["sales"]
    np.testing.assert_allclose(total.to_numpy(), _sums(gold, None).set_index("ds")["y"].reindex(total.index))
    cream = train[train["unique_id"] == "category/Cream"].set_index("ds")["sales"]
    np.testing.assert_allclose(cream.to_numpy(), _sums(gold[gold["category"] == "Cream"], None)
                               .set_index("ds")["y"].reindex(cream.index).fillna(0))
    predict = overall[overall["origin"] == "Predict"].set_index(["unique_id", "ds"]).sort_index()
    default = forecasts[forecasts["is_default"]].set_index(["unique_id", "ds"]).sort_index()
    np.testing.assert_allclose(predict["sales"], default["y_hat"])
    np.testing.assert_allclose(predict["hi_95"], default["hi_95"])
    assert (predict["method"] == default["method"]).all()
    plots = DataPaths(tmp_path).plots / "levels"
    assert {"total.png", "category_Cream.png"} <= {p.name for p in plots.glob("*.png")}

    history = read_table(tmp_path, FORECAST_HISTORY_BY_LEVEL.name)
    assert len(history) == len(default) and history["issued_at"].nunique() == 1
    assert read_table(tmp_path, FORECAST_ACCURACY_BY_LEVEL.name).empty  # nothing to score yet

    last = gold["ds"].max().date()
    for week in (1, 2):
        write_new_week(tmp_path / "landing", date.fromordinal(last.toordinal() + 7 * week), seed=7, n_products=20,
                       n_customers=8)
    second = _materialize(tmp_path, settings_file, GOLD_CHAIN | dg.AssetSelection.keys(FORECAST_ACCURACY_BY_LEVEL.key))
    assert second.success
    gold = read_table(tmp_path, GOLD.name)
    accuracy = read_table(tmp_path, FORECAST_ACCURACY_BY_LEVEL.name)
    assert set(accuracy["level"]) == {"total", "category", "category/brand", "product"}
    assert accuracy["ds"].nunique() >= 1 and (accuracy["ds"] > pd.Timestamp(last)).all()
    scored_total = accuracy[accuracy["unique_id"] == "total"].set_index("ds")
    actual = _sums(gold, None).set_index("ds")["y"]
    np.testing.assert_allclose(scored_total["y"], actual.reindex(scored_total.index))
    np.testing.assert_allclose(scored_total["y_hat"], default.loc["total", "y_hat"].reindex(scored_total.index))
    materialized = second.asset_materializations_for_node("monitoring__forecast_accuracy_by_level")[0]
    per_level = materialized.metadata["per_level"]
    assert {"wape", "backtest_smape", "category/brand"} <= set(per_level.value.replace("|", " ").split())
