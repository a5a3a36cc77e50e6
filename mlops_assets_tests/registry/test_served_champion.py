"""The champion chosen is the one served, also on W-FRI weeks where some series end a few periods before
the others; those are forecast through the common horizon end; LightGBM's fits print no warnings."""

import warnings

import numpy as np
import pandas as pd

from mlops_assets.forecasting.backtest import run_backtest
from mlops_assets.forecasting.intervals import calibrate
from mlops_assets.registry.champion_model import ChampionForecaster
from mlops_assets.settings import Settings

HORIZON = 6


def _fridays(behind: dict[str, int], n: int = 70) -> pd.DataFrame:
    """Weekly store x department sales on W-FRI weeks; a series in ``behind`` ends that many weeks early."""
    rng = np.random.default_rng(7)
    frames = []
    for i in range(6):
        uid = f"store1_dept{i}"
        length = n - behind.get(uid, 0)
        ds = pd.date_range("2022-01-07", periods=length, freq="W-FRI")
        y = 100 + 10 * i + 15 * np.sin(2 * np.pi * np.arange(length) / 52) + rng.normal(0, 3, length)
        frames.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": y}))
    return pd.concat(frames, ignore_index=True)


def _promotions(history: pd.DataFrame) -> pd.DataFrame:
    """A planned promotion flag for each series' history and its own next horizon (no more: gold's rows)."""
    ends = history.groupby("unique_id")["ds"].max()
    future = [pd.DataFrame({"unique_id": uid, "ds": pd.date_range(end, periods=HORIZON + 1, freq="W-FRI")[1:]})
              for uid, end in ends.items()]
    x = pd.concat([history[["unique_id", "ds"]], *future], ignore_index=True)
    return x.assign(promo=(x["ds"].dt.isocalendar().week.to_numpy() % 5 == 0).astype(float))


def _served(history: pd.DataFrame, regressors: pd.DataFrame | None) -> ChampionForecaster:
    settings = Settings(frequency="W-FRI", horizon=HORIZON, season_length=52, models=["Naive", "LightGBM"],
                        backtest={"windows": 2})
    backtest = run_backtest(history, settings, n_jobs=1, regressors=regressors)
    champions = pd.DataFrame({"unique_id": sorted(history["unique_id"].unique()), "model": "LightGBM"})
    calibration = calibrate(backtest, champions, history, (80, 95), HORIZON)
    return ChampionForecaster("W-FRI", 52, HORIZON, intervals="backtest", n_jobs=1).fit(
        history, champions, regressors=regressors, calibration=calibration)


def test_a_w_fri_lightgbm_champion_is_served_as_lightgbm_when_some_series_lag():
    history = _fridays({"store1_dept4": 3, "store1_dept5": 1})
    forecaster = _served(history, _promotions(history))
    series = forecaster.series.set_index("unique_id")
    assert (series["fitted_model"] == "LightGBM").all(), series
    assert series["behind"].to_dict() == {f"store1_dept{i}": {4: 3, 5: 1}.get(i, 0) for i in range(6)}

    forecasts = forecaster.predict()
    assert set(forecasts["model"]) == {"LightGBM"}
    assert np.isfinite(forecasts[["y_hat", "lo_80", "hi_80", "lo_95", "hi_95"]].to_numpy()).all()
    # Every series is forecast through the common horizon end, on Fridays.
    common_end = history["ds"].max() + pd.offsets.Week(weekday=4) * HORIZON
    assert (forecasts.groupby("unique_id")["ds"].max() == common_end).all()
    assert (forecasts["ds"].dt.dayofweek == 4).all()
    # The lagging series' extra steps are marked: horizon_step counts from its own last actual.
    lagging = forecasts[forecasts["unique_id"] == "store1_dept4"]
    assert lagging["horizon_step"].tolist() == list(range(1, HORIZON + 4))
    last_actual = history.loc[history["unique_id"] == "store1_dept4", "ds"].max()
    assert lagging["ds"].min() == last_actual + pd.Timedelta(weeks=1)
    assert forecasts.groupby("unique_id").size().to_dict() == {
        f"store1_dept{i}": HORIZON + {4: 3, 5: 1}.get(i, 0) for i in range(6)}
    # A request for h periods gives the others h and the lagging series h + 3, ending together.
    two = forecaster.predict(["store1_dept0", "store1_dept4"], h=2)
    assert two.groupby("unique_id").size().to_dict() == {"store1_dept0": 2, "store1_dept4": 5}
    assert two.groupby("unique_id")["ds"].max().nunique() == 1


def test_lightgbm_backtest_and_fit_print_no_null_lag_warnings():
    # Series shorter than a season beside longer ones: mlforecast's "Found null values in lag52" case.
    history = _fridays({"store1_dept5": 30})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forecaster = _served(history, None)
    assert (forecaster.series["fitted_model"] == "LightGBM").all()
    assert not [w for w in caught if "Found null values" in str(w.message)]
