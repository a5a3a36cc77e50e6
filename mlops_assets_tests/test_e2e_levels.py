"""Levels through the real graph: a store x department series file whose ids declare the store, forecast at
the total, store and series levels (one bucket per store, the total from their sums), reconciled, with its
contract and coherence checks passing; a department too short to forecast still counted in its store."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_assets.catalog import EVALUATION_BY_LEVEL, FORECASTS, FORECASTS_BY_LEVEL
from mlops_assets.wiring.resources import build_resources
from mlops_assets_tests.conftest import read_table, with_levels

pytestmark = pytest.mark.e2e


def test_store_and_total_levels_from_declared_id_parts_add_up(tmp_path):
    rng = np.random.default_rng(5)
    weeks = pd.date_range("2024-01-01", periods=40, freq="W-MON")
    frames = []
    for store in (1, 2):
        for dept in ("3", "7", "12"):
            n = 5 if (store, dept) == (2, "12") else 40  # a department opened late: excluded, still in store 2
            y = 50 * store + 10 * int(dept) + 8 * np.sin(2 * np.pi * np.arange(n) / 4) + rng.normal(0, 3, n)
            frames.append(pd.DataFrame({"unique_id": f"{store}_{dept}", "ds": weeks[-n:], "y": np.round(y, 1)}))
    landed = pd.concat(frames, ignore_index=True)
    folder = tmp_path / "landing" / "series"
    folder.mkdir(parents=True)
    landed.to_csv(folder / "store_dept.csv", index=False)
    settings = {"source": "series", "horizon": 4, "season_length": 4, "backtest": {"windows": 2},
                "models": ["Naive", "SeasonalNaive", "WindowAverage"],
                "hierarchy": {"levels": [["store"]], "id_pattern": "(?P<store>[0-9]+)_(?P<dept>[0-9]+)"}}
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(yaml.safe_dump(settings))
    # The chain through its forecasts (the series' base forecasts), then the levels.
    chain = (dg.AssetSelection.keys(FORECASTS.key).upstream()
             | dg.AssetSelection.keys(FORECASTS_BY_LEVEL.key, EVALUATION_BY_LEVEL.key))
    result = dg.materialize(with_levels(),
                            resources=build_resources(str(tmp_path), str(settings_file), landing_settle_seconds=0.0),
                            instance=dg.DagsterInstance.ephemeral(), selection=chain)
    assert result.success
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks[("forecasting/forecasts_by_level", "coherent")]
    assert checks[("forecasting/forecasts_by_level", "matches_contract")]
    assert checks[("forecasting/evaluation_by_level", "matches_contract")]
    gold = read_table(tmp_path, "gold.sales_data_for_forecast")
    last = gold["ds"].max()
    store2 = gold[gold["unique_id"].str.startswith("2_") & (gold["ds"] == last)]
    assert "2_12" in set(store2["unique_id"])  # the late department has an actual in the last week

    forecasts = read_table(tmp_path, "forecasting.forecasts_by_level")
    assert set(forecasts["level"]) == {"total", "store", "series"}
    assert set(forecasts.loc[forecasts["level"] == "store", "unique_id"]) == {"store/1", "store/2"}
    default = forecasts[forecasts["is_default"]].pivot(index="ds", columns="unique_id", values="y_hat")
    assert len(default) == 4
    np.testing.assert_allclose(default["store/2"], default[["2_3", "2_7", "2_12"]].sum(axis=1), atol=1e-6)
    np.testing.assert_allclose(default["total"], default[["store/1", "store/2"]].sum(axis=1), atol=1e-6)
    assert set(forecasts.loc[forecasts["unique_id"] == "2_12", "base_model"]) == {"not forecast"}
    assert set(read_table(tmp_path, "gold.series_excluded")["unique_id"]) == {"2_12"}

    evaluation = read_table(tmp_path, "forecasting.evaluation_by_level")
    assert set(evaluation["level"]) == {"total", "store", "series"}
    assert evaluation["is_default"].sum() == 3
    materialization = result.asset_materializations_for_node("levels_forecast")[0]
    assert materialization.metadata["dagster/row_count"].value == len(forecasts)
    # The series' Base forecasts are what the registered model serves, not forecast again.
    served = read_table(tmp_path, "forecasting.forecasts").set_index(["unique_id", "ds"])["y_hat"]
    base = forecasts[(forecasts["method"] == "Base") & (forecasts["level"] == "series")
                     & (forecasts["unique_id"] != "2_12")].set_index(["unique_id", "ds"])["y_hat"]
    np.testing.assert_allclose(base.to_numpy(), served.reindex(base.index).to_numpy(), rtol=1e-9)
