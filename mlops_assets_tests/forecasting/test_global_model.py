import numpy as np
import pandas as pd

from mlops_assets.forecasting.global_model import backtest_cutoffs, backtest_global, forecast_global, known_at

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
