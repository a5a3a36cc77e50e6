import numpy as np
import pandas as pd

from mlops_assets.forecasting.global_model import (
    backtest_cutoffs,
    backtest_global,
    build_mlforecast,
    features_of,
    forecast_global,
    known_at,
    spec_for,
)

H = 4


def _data(n_series: int = 8, n: int = 80) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weekly series whose sales double in promoted weeks; promotions known for the next horizon too."""
    rng = np.random.default_rng(0)
    ds = pd.date_range("2023-01-02", periods=n + H, freq="W-MON")
    history, regressors = [], []
    for i in range(n_series):
        promo = (rng.random(n + H) < 0.2) * 20.0
        price = 5.0 + rng.normal(0, 0.1, n + H)
        y = (10 + i) * (1 + promo / 20) + rng.normal(0, 0.5, n + H)
        history.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds[:n], "y": y[:n]}))
        regressors.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "promo_depth": promo, "price": price}))
    return pd.concat(history, ignore_index=True), pd.concat(regressors, ignore_index=True)


def test_cutoffs_are_statsforecasts():
    history, _ = _data(n_series=1, n=20)
    cutoffs = backtest_cutoffs(history, "W-MON", horizon=4, windows=3, step=2)
    end = history["ds"].max()
    assert cutoffs["cutoff"].tolist() == [end - pd.Timedelta(weeks=w) for w in (8, 6, 4)]


def test_planned_promotions_are_used_and_lift_the_forecast():
    history, regressors = _data()
    out = forecast_global(history, regressors[["unique_id", "ds", "promo_depth"]], "W-MON", 4, H)
    future = regressors[regressors["ds"] > history["ds"].max()]
    merged = out.merge(future, on=["unique_id", "ds"])
    level = merged["unique_id"].str[1:].astype(int) + 10
    lift = merged["y_hat"] / level
    assert lift[merged["promo_depth"] > 0].mean() > 1.5 * lift[merged["promo_depth"] == 0].mean()


def test_the_backtest_knows_only_what_was_known_at_each_cutoff():
    # Absurd actuals and prices after a cutoff must not move that cutoff's forecasts; planned promotions may.
    history, regressors = _data()
    x = regressors[regressors["ds"] <= history["ds"].max()]
    args = ("W-MON", 4, H, 2, H)
    base = backtest_global(history, x, *args, last_known=["price"])
    first_cutoff = base["cutoff"].min()
    later = history["ds"] > first_cutoff
    absurd_y = history.assign(y=np.where(later, 1e6, history["y"]))
    absurd_x = x.assign(price=np.where(x["ds"] > first_cutoff, 1e6, x["price"]))
    shifted = backtest_global(absurd_y, absurd_x, *args, last_known=["price"])
    first = base["cutoff"] == first_cutoff
    np.testing.assert_allclose(shifted.loc[first, "y_hat"], base.loc[first, "y_hat"])
    # The same absurd prices leak when price is (wrongly) declared known in advance: the test can fail.
    leaky = backtest_global(history, absurd_x, *args, last_known=[])
    assert not np.allclose(leaky.loc[first, "y_hat"], base.loc[first, "y_hat"])


def test_last_known_fills_the_future_with_the_value_at_the_cutoff():
    x = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2024-01-01", periods=4, freq="W-MON"),
                      "price": [1.0, 2.0, 9.0, 9.0], "promo_depth": [0, 0, 10.0, 0]})
    out = known_at(x, pd.Timestamp("2024-01-08"), ["price"])
    assert out["price"].tolist() == [1.0, 2.0, 2.0, 2.0]
    assert out["promo_depth"].tolist() == [0, 0, 10.0, 0]


def test_series_shorter_than_a_season_and_two_are_still_forecast():
    # 40 weeks, season 52: the season lag and window would leave no complete training row.
    history, regressors = _data(n_series=4, n=40)
    out = backtest_global(history, regressors, "W-MON", 52, H, 2, H)
    assert len(out) == 4 * 2 * H and np.isfinite(out["y_hat"]).all()


# ----------------------------------------------------------------------------------------------- daily data
DH = 14


def _daily(n_series: int = 4, days: int = 200, closed_share: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily series with a weekly pattern whose sales triple on promoted days (planned, known DH days ahead) and
    a per-series price (last_known); ``closed_share``: the share of days, at random, the series is closed
    (open 0, sales 0)."""
    rng = np.random.default_rng(1)
    ds = pd.date_range("2024-01-01", periods=days + DH, freq="D")
    weekly = np.array([1.0, 1.0, 1.1, 1.2, 1.5, 1.8, 0.6])[ds.dayofweek]
    history, regressors = [], []
    for i in range(n_series):
        promo = (rng.random(days + DH) < 0.15).astype(float)
        open_ = (rng.random(days + DH) >= closed_share).astype(float)
        y = (20 + 5 * i) * weekly * (1 + 2 * promo) * open_ + rng.normal(0, 0.5, days + DH) * open_
        history.append(pd.DataFrame({"unique_id": f"d{i}", "ds": ds[:days], "y": np.clip(y[:days], 0, None)}))
        regressors.append(pd.DataFrame({"unique_id": f"d{i}", "ds": ds, "promo": promo, "open": open_,
                                        "holiday_days": (ds.dayofyear % 50 == 0).astype(float),
                                        "price": 3.0 + rng.normal(0, 0.1, days + DH)}))
    return pd.concat(history, ignore_index=True), pd.concat(regressors, ignore_index=True)


def test_daily_features_are_the_calendars_the_drivers_and_lags_no_shorter_than_the_horizon():
    history, regressors = _daily()
    spec = spec_for("D")
    mlf = build_mlforecast(spec, "D", 7, DH, 0, 200, False)
    x = features_of(regressors, spec)
    frame = mlf.preprocess(history.merge(x, on=["unique_id", "ds"]), static_features=[], dropna=False)
    for column in ("dayofweek", "day", "week_of_year", "month", "promo", "price", "holiday_days",
                   "days_to_holiday", "days_since_holiday"):
        assert column in frame.columns, column
    lags = [int(c[3:]) for c in frame.columns if c.startswith("lag") and c[3:].isdigit()]
    assert min(lags) >= DH and min(lags) % 7 == 0
    # Weekly data keeps its own features: week of year and month, no day of week.
    assert spec_for("W-MON").calendar == ("week", "month")


def test_a_planned_driver_changes_the_daily_forecast():
    history, regressors = _daily()
    future = regressors["ds"] > history["ds"].max()
    none = regressors.assign(promo=np.where(future, 0.0, regressors["promo"]))
    every = regressors.assign(promo=np.where(future, 1.0, regressors["promo"]))
    low = forecast_global(history, none, "D", 7, DH)
    high = forecast_global(history, every, "D", 7, DH)
    assert high["y_hat"].mean() > 2 * low["y_hat"].mean()


def test_closed_rows_are_forecast_zero_and_not_trained_on():
    # Closed on random days: a model trained on those zeros cannot tell them apart.
    history, regressors = _daily(closed_share=0.2)
    x = regressors.drop(columns="open").assign(closed=regressors["open"] == 0)
    out = forecast_global(history, x, "D", 7, DH).merge(x, on=["unique_id", "ds"])
    assert (out.loc[out["closed"], "y_hat"] == 0).all() and (out.loc[~out["closed"], "y_hat"] > 5).all()
    # Trained on the closed days' zeros (no closure given), the open days' forecasts sink towards them.
    blind = forecast_global(history, x.drop(columns="closed"), "D", 7, DH).merge(x, on=["unique_id", "ds"])
    assert out.loc[~out["closed"], "y_hat"].mean() > 1.1 * blind.loc[~blind["closed"], "y_hat"].mean()


def test_a_daily_backtest_cannot_see_a_last_known_drivers_future():
    history, regressors = _daily(n_series=3, days=160)
    x = regressors[regressors["ds"] <= history["ds"].max()]
    args = ("D", 7, DH, 2, DH)
    base = backtest_global(history, x, *args, last_known=["price"])
    first_cutoff = base["cutoff"].min()
    absurd = x.assign(price=np.where(x["ds"] > first_cutoff, 1e6, x["price"]))
    first = base["cutoff"] == first_cutoff
    np.testing.assert_allclose(backtest_global(history, absurd, *args, last_known=["price"]).loc[first, "y_hat"],
                               base.loc[first, "y_hat"])
    leaky = backtest_global(history, absurd, *args, last_known=[])
    assert not np.allclose(leaky.loc[first, "y_hat"], base.loc[first, "y_hat"])


def test_static_attributes_are_features():
    history, regressors = _daily()
    statics = pd.DataFrame({"unique_id": [f"d{i}" for i in range(4)], "family": ["a", "a", "b", "b"]})
    out = forecast_global(history, regressors, "D", 7, DH, statics=statics)
    assert len(out) == 4 * DH and np.isfinite(out["y_hat"]).all()
