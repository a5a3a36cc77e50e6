"""A series file with the user's own drivers (a price known only up to today, a planned promotion flag) and
rows after each series' last actual that give the planned future, through the real graph: the drivers
reach gold.regressors and LightGBM, the planned rows never become sales, and the served champion answers."""

from __future__ import annotations

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_assets.settings import DataPaths
from mlops_assets_tests.conftest import materialize_all, read_table
from mlops_assets_tests.driver_series import SERIES_COLUMNS, driver_series

pytestmark = pytest.mark.e2e


def test_a_series_file_with_drivers_and_planned_rows_is_forecast_with_them(tmp_path):
    folder = tmp_path / "landing" / "series"
    folder.mkdir(parents=True)
    landed = driver_series()
    text = landed.astype({"price": object})
    text.loc[10, "price"] = "n/a?"  # one bad cell: that row is quarantined, the others kept
    text.assign(note="free text").to_csv(folder / "drivers.csv", index=False)
    settings = {"source": "series", "horizon": 4, "season_length": 4, "backtest": {"windows": 2},
                "models": ["Naive", "LightGBM"], "selection": {"mode": "per_series"}, "plots": {"max_series": 0},
                # "events" is in no file: the run says so rather than using zeros quietly.
                "regressors": {"series_columns": {**SERIES_COLUMNS, "events": "planned"}}}
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(yaml.safe_dump(settings))
    chain = dg.AssetSelection.all() - dg.AssetSelection.groups("monitoring")
    result = materialize_all(tmp_path, str(settings_file), selection=chain)
    assert result.success

    rejected = read_table(tmp_path, "raw.rejected_rows")
    assert rejected[["source_file", "source_row", "column_name", "reason"]].values.tolist() == [
        ["series/drivers.csv", 12, "price", "price 'n/a?' is not a number"]]
    raw = read_table(tmp_path, "raw.series")
    assert {"price", "promo_flag"} <= set(raw.columns) and "note" not in raw.columns

    # The planned rows are not sales: gold, the backtest and sales_overall end at each series' last actual.
    actuals = landed[landed["y"].notna()]
    last_actual = actuals.groupby("unique_id")["ds"].max()
    gold = read_table(tmp_path, "gold.sales_data_for_forecast")
    assert (gold.groupby("unique_id")["ds"].max() == last_actual).all() and len(gold) == len(actuals)
    assert gold["imputed"].sum() == 1  # the quarantined row's week, interpolated as any missing value
    backtest = read_table(tmp_path, "forecasting.backtest_forecasts")
    assert (backtest["ds"] <= backtest["unique_id"].map(last_actual)).all()
    assert set(backtest["model"]) == {"Naive", "LightGBM"}
    overall = read_table(tmp_path, "serving.sales_overall")
    train = overall[overall["origin"] == "Train"]
    assert len(train) == len(actuals) and (train["ds"] <= train["unique_id"].map(last_actual)).all()

    # gold.regressors holds the drivers; the planned flags of the future weeks are the file's.
    x = read_table(tmp_path, "gold.regressors")
    future = x[x["is_future"]].merge(landed[landed["y"].isna()], on=["unique_id", "ds"])
    assert len(future) == len(landed) - len(actuals)
    np.testing.assert_array_equal(future["promo_flag_x"], future["promo_flag_y"])
    event = next(e for e in result.get_asset_materialization_events()
                 if e.asset_key == dg.AssetKey(["gold", "regressors"]))
    metadata = event.materialization.metadata
    assert metadata["used_by_lightgbm"].value == ["promo_depth", "holiday_days", "events", "price", "promo_flag"]
    assert metadata["series_columns_without_values"].value == ["events"]

    # The served champion (the registered pyfunc) answers with the published forecasts.
    forecasts = read_table(tmp_path, "forecasting.forecasts")
    assert sorted(forecasts["unique_id"].unique()) == sorted(last_actual.index)
    assert (forecasts["ds"] > forecasts["unique_id"].map(last_actual)).all()
    mlflow.set_tracking_uri(DataPaths(tmp_path).mlflow_tracking_uri)
    mlflow.set_registry_uri(DataPaths(tmp_path).mlflow_tracking_uri)
    model = mlflow.pyfunc.load_model("models:/sales_forecast@champion")
    served = model.predict(pd.DataFrame({"unique_id": sorted(last_actual.index), "h": 4}))
    served["ds"] = pd.to_datetime(served["ds"])
    merged = forecasts.merge(served, on=["unique_id", "ds"], suffixes=("", "_served"))
    assert len(merged) == len(forecasts)
    np.testing.assert_allclose(merged["y_hat_served"], merged["y_hat"])
