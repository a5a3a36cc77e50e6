"""The groups above the series forecast by the zoo and the global model, the level a static feature, on the
series' own backtest cutoffs."""

import numpy as np
import pandas as pd
import pytest

from mlops_assets.forecasting.global_model import backtest_cutoffs
from mlops_assets.levels.frames import in_memory
from mlops_assets.levels.hierarchy import build_hierarchy, series_attributes
from mlops_assets.levels.layer import Tables
from mlops_assets.levels.upper import LEVEL_FEATURE, forecast_upper, level_regressors
from mlops_assets.settings import Settings
from mlops_assets_tests.levels.test_forecast import _gold

SETTINGS = Settings(horizon=4, season_length=4, backtest={"windows": 2}, hierarchy={},
                    models=["Naive", "WindowAverage", "LightGBM"])


def _upper(cutoffs, tmp_path):
    gold = _gold()
    connect = in_memory(gold, {"P9"})
    with connect() as con:
        hierarchy = build_hierarchy(series_attributes(con, Tables().gold, SETTINGS), SETTINGS)
    return gold, hierarchy, forecast_upper(connect, Tables().gold, hierarchy, {"P1", "P2", "P3", "P4", "P5"},
                                           gold["ds"].max(), cutoffs, SETTINGS, tmp_path)


def test_the_groups_are_backtested_with_the_global_model_on_the_series_cutoffs(tmp_path):
    gold, hierarchy, upper = _upper([], tmp_path)
    series = backtest_cutoffs(gold[gold["unique_id"] == "P1"], "W-MON", 4, 2, SETTINGS.step)
    assert sorted(upper.backtest["cutoff"].unique()) == sorted(series["cutoff"])
    assert "LightGBM" in upper.models
    groups = hierarchy.nodes.loc[hierarchy.nodes["level"] != "product", "unique_id"]
    # Every group with a forecast series below it: Cream's brand D has only the excluded P9.
    assert set(upper.champions["unique_id"]) == set(groups) - {"category/Cream/brand/D"}
    assert set(upper.decisions) == {"total", "category", "category/brand"}
    fc = upper.forecasts
    assert fc.groupby("unique_id").size().eq(SETTINGS.horizon).all()
    assert np.isfinite(fc[["y_hat", "lo_80", "hi_95"]].to_numpy()).all()
    assert ((fc["lo_95"] <= fc["lo_80"]) & (fc["lo_80"] <= fc["y_hat"]) & (fc["y_hat"] <= fc["hi_80"])
            & (fc["hi_80"] <= fc["hi_95"])).all()


def test_cutoffs_that_are_not_the_series_stored_ones_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not the series' stored ones"):
        _upper([pd.Timestamp("2020-01-06")], tmp_path)


def test_the_level_feature_covers_each_group_history_and_horizon():
    history = pd.DataFrame({"unique_id": ["total"] * 3 + ["category/A"] * 2,
                            "ds": pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-08",
                                                  "2024-01-15"]), "y": 1.0})
    levels = pd.Series({"total": "total", "category/A": "category"})
    x = level_regressors(history, levels, Settings(horizon=2))
    assert x.groupby("unique_id").size().to_dict() == {"total": 5, "category/A": 4}
    assert x.loc[x["unique_id"] == "category/A", LEVEL_FEATURE].eq("category").all()
    assert x["ds"].max() == pd.Timestamp("2024-01-29")
