"""A W-FRI series file (weekly store x department sales, one department reporting two weeks late) through
the real graph: every LightGBM champion is served as LightGBM, the late series is forecast through the
common horizon end, and the check that warns about replaced champions passes."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_assets_tests.conftest import materialize_all, read_table

pytestmark = pytest.mark.e2e
HORIZON = 4


def test_a_w_fri_series_file_serves_its_lightgbm_champions_as_lightgbm(tmp_path):
    rng = np.random.default_rng(11)
    frames = []
    for i in range(5):
        weeks = 70 - (2 if i == 4 else 0)
        ds = pd.date_range("2022-01-07", periods=weeks, freq="W-FRI")
        y = np.round(200 + 20 * i + 40 * np.sin(2 * np.pi * np.arange(weeks) / 13) + rng.normal(0, 4, weeks), 1)
        frames.append(pd.DataFrame({"unique_id": f"1_{i + 1}", "ds": ds.strftime("%Y-%m-%d"), "y": y}))
    folder = tmp_path / "landing" / "series"
    folder.mkdir(parents=True)
    pd.concat(frames).to_csv(folder / "stores.csv", index=False)
    settings = {"source": "series", "frequency": "W-FRI", "horizon": HORIZON, "season_length": 13,
                "backtest": {"windows": 2}, "models": ["Naive", "LightGBM"], "selection": {"mode": "per_series"},
                "plots": {"max_series": 0}}
    (tmp_path / "settings.yaml").write_text(yaml.safe_dump(settings))
    chain = dg.AssetSelection.all() - dg.AssetSelection.groups("monitoring")
    result = materialize_all(tmp_path, str(tmp_path / "settings.yaml"), selection=chain)
    assert result.success

    champions = read_table(tmp_path, "forecasting.series_champions").set_index("unique_id")["model"]
    assert (champions == "LightGBM").sum() >= 3, champions
    forecasts = read_table(tmp_path, "forecasting.forecasts")
    served = forecasts.groupby("unique_id")["model"].unique().map(lambda m: ",".join(sorted(m)))
    assert served.to_dict() == champions.to_dict()
    assert (forecasts["champion"] == forecasts["unique_id"].map(champions)).all()
    # The late department is forecast through the same last Friday as the others, two steps further.
    assert forecasts.groupby("unique_id")["ds"].max().nunique() == 1
    assert forecasts.groupby("unique_id")["horizon_step"].max().to_dict() == {
        f"1_{i + 1}": HORIZON + (2 if i == 4 else 0) for i in range(5)}
    assert (pd.to_datetime(forecasts["ds"]).dt.dayofweek == 4).all()

    checks = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()
              if e.asset_key == dg.AssetKey(["forecasting", "forecasts"])}
    assert checks["champions_served"].passed
    assert checks["champions_served"].metadata["champions_not_served"].value == 0
    registry = next(e for e in result.get_asset_materialization_events()
                    if e.asset_key == dg.AssetKey(["registry", "sales_forecast_model"]))
    assert registry.materialization.metadata["champions_not_served"].value == 0
