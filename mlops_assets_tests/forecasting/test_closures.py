import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlops_assets.forecasting.backtest import run_backtest
from mlops_assets.forecasting.closures import ClosedPeriods, mark_closed, zero_closed
from mlops_assets.forecasting.metrics import evaluate
from mlops_assets.forecasting.selection import select_champions
from mlops_assets.registry.champion_model import ChampionForecaster, forecaster_for
from mlops_assets.settings import Settings


def test_mask_of_weekdays_and_dates_whatever_the_time_of_day():
    closed = ClosedPeriods.of(["sun"], ["2024-12-25"])
    ds = pd.to_datetime(["2024-12-21 00:00", "2024-12-22 00:00", "2024-12-25 13:00", "2024-12-26 00:00"])
    # Sat, Sun, Wed (Christmas, in the afternoon), Thu
    assert closed.mask(ds).tolist() == [False, True, True, False]
    assert not ClosedPeriods() and ClosedPeriods().mask(ds).tolist() == [False] * 4
    with pytest.raises(ValueError, match="unknown weekday"):
        ClosedPeriods.of(["sunday"])


def test_marked_backtest_and_zeroed_forecasts_keep_the_actuals():
    ds = pd.date_range("2024-01-06", periods=3, freq="D")  # Sat, Sun, Mon
    backtest = pd.DataFrame({"unique_id": "a", "cutoff": pd.Timestamp("2024-01-05"), "ds": ds, "y": [5.0, 0.0, 4.0],
                             "model": "Naive", "y_hat": 5.0})
    marked = mark_closed(backtest, ClosedPeriods.of(["sun"]))
    assert marked["closed"].tolist() == [False, True, False] and marked["y_hat"].tolist() == [5.0, 0.0, 5.0]
    assert marked["y"].tolist() == [5.0, 0.0, 4.0]
    forecasts = pd.DataFrame({"unique_id": "a", "ds": ds, "model": "Naive", "y_hat": 5.0, "lo_80": 3.0,
                              "hi_80": 7.0})
    out = zero_closed(forecasts, ClosedPeriods.of(["sun"]))
    assert out.loc[1, ["y_hat", "lo_80", "hi_80"]].tolist() == [0.0, 0.0, 0.0]
    assert out.drop(index=1).equals(forecasts.drop(index=1))


def test_settings_name_what_is_wrong():
    settings = Settings(frequency="D", closed={"weekdays": ["Sunday", "sat"], "dates": ["2024-12-25"]})
    assert settings.closed.weekdays == ["sat", "sun"]
    assert ClosedPeriods.from_settings(settings).weekdays == (5, 6)
    with pytest.raises(ValidationError, match="'sonntag' is not a weekday; use mon, tue"):
        Settings(frequency="D", closed={"weekdays": ["sonntag"]})
    with pytest.raises(ValidationError, match="applies to daily data .* frequency is W-MON"):
        Settings(closed={"weekdays": ["sun"]})
    with pytest.raises(ValidationError, match="closed.dates"):
        Settings(frequency="D", closed={"dates": ["2024-13-01"]})
    with pytest.raises(ValidationError, match="selection.metric"):
        Settings(selection={"metric": "mape"})
    assert Settings().closed.weekdays == [] and Settings().selection.metric == "smape"
    # A closure or a metric is part of the model: it changes the fingerprint a new version is registered on.
    prints = {Settings(frequency="D").fingerprint(), settings.fingerprint(),
              Settings(frequency="D", closed={"dates": ["2024-12-26"]}).fingerprint(),
              Settings(frequency="D", selection={"metric": "wape"}).fingerprint()}
    assert len(prints) == 4


def _daily(n_series: int = 3, days: int = 62) -> pd.DataFrame:
    """Shops closed on Sundays (0 sales) whose open-day level wanders: a random walk. The last day is a
    Saturday, so the backtest's cutoffs are Saturdays."""
    rng = np.random.default_rng(5)
    ds = pd.date_range("2024-01-01", periods=days, freq="D")  # starts on a Monday
    frames = []
    for i in range(n_series):
        level = 100 + np.cumsum(rng.normal(0, 4, days))
        frames.append(pd.DataFrame({"unique_id": f"shop{i}", "ds": ds, "y": np.where(ds.weekday == 6, 0.0, level)}))
    return pd.concat(frames, ignore_index=True)


def test_closed_days_no_longer_decide_the_selection_and_are_forecast_as_zero():
    history = _daily()
    base = {"frequency": "D", "horizon": 7, "season_length": 7, "backtest": {"windows": 2},
            "intervals": {"method": "backtest"}}
    models = ["Naive", "SeasonalNaive"]
    plain, closed = Settings(**base), Settings(**base, closed={"weekdays": ["sun"]})

    # Undeclared, the Sundays decide: only SeasonalNaive forecasts them as 0, and it wins every shop.
    unaware = run_backtest(history, plain, models)
    assert (select_champions(evaluate(unaware, history, 7))["model"] == "SeasonalNaive").all()
    # Declared, they are forecast as 0 by every model and not scored: the open days decide (Naive follows
    # the wandering level better than last week's value).
    aware = run_backtest(history, closed, models)
    sundays = aware["ds"].dt.weekday == 6
    assert aware.loc[sundays, "closed"].all() and (aware.loc[sundays, "y_hat"] == 0).all()
    assert not aware.loc[~sundays, "closed"].any()
    champions = select_champions(evaluate(aware, history, 7))
    assert (champions["model"] == "Naive").all()

    forecaster = forecaster_for(closed).fit(history, champions[["unique_id", "model"]], aware)
    out = forecaster.predict()
    on_sunday = out["ds"].dt.weekday == 6
    assert on_sunday.sum() == 3
    assert (out.loc[on_sunday, ["y_hat", "lo_80", "hi_80", "lo_95", "hi_95"]] == 0).all().all()
    open_days = out[~on_sunday]
    assert (open_days["y_hat"] > 50).all() and (open_days["hi_95"] > open_days["y_hat"]).all()
    # The served model is this object pickled: a forecaster without closures forecasts the Sunday as any day.
    open_all = ChampionForecaster("D", 7, 7, intervals="backtest").fit(history, champions[["unique_id", "model"]],
                                                                        aware)
    assert (open_all.predict().loc[on_sunday, "y_hat"] > 50).all()


def _with_open_flag(history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shops closed (open 0, sales 0) on a few random days each, the flag known for the next week too."""
    rng = np.random.default_rng(5)
    ds = pd.date_range(history["ds"].min(), history["ds"].max() + pd.Timedelta(days=7), freq="D")
    x = pd.DataFrame([(uid, d) for uid in sorted(history["unique_id"].unique()) for d in ds],
                     columns=["unique_id", "ds"])
    x["open"] = (rng.random(len(x)) >= 0.1).astype(float)
    shut = history.merge(x, on=["unique_id", "ds"])["open"].to_numpy() == 0
    return history.assign(y=np.where(shut, 0.0, history["y"])), x


def test_a_closure_column_marks_closed_rows_per_series_not_scored_and_zero():
    history, x = _with_open_flag(_daily())
    settings = Settings(frequency="D", horizon=7, season_length=7, backtest={"windows": 2}, source="series",
                        regressors={"series_columns": {"open": "planned"}}, closed={"column": "open"})
    backtest = run_backtest(history, settings, ["Naive", "SeasonalNaive", "LightGBM"], regressors=x)
    shut = backtest.merge(x, on=["unique_id", "ds"])["open"].to_numpy() == 0
    assert shut.any() and backtest["closed"].to_numpy().tolist() == shut.tolist()
    assert (backtest.loc[shut, "y_hat"] == 0).all() and (backtest.loc[~shut, "y_hat"] > 0).mean() > 0.5
    # Not scored: absurd actuals on the closed rows change no score.
    absurd = backtest.assign(y=np.where(shut, 1e6, backtest["y"]))
    pd.testing.assert_frame_equal(evaluate(absurd, history, 7), evaluate(backtest, history, 7))
    # Forecasts and bounds are 0 there, per series and day.
    forecasts = x[x["ds"] > history["ds"].max()].assign(model="Naive", y_hat=5.0, lo_80=3.0, hi_80=7.0)
    out = zero_closed(forecasts.drop(columns="open"), ClosedPeriods.from_settings(settings), x)
    closed_future = forecasts["open"].to_numpy() == 0
    assert (out.loc[closed_future, ["y_hat", "lo_80", "hi_80"]] == 0).all().all()
    assert (out.loc[~closed_future, "y_hat"] == 5.0).all()
    with pytest.raises(ValidationError, match="closed.column 'open' must be declared planned"):
        Settings(frequency="D", closed={"column": "open"})


def test_a_served_statsforecast_champion_is_zero_on_the_closure_columns_rows_ahead():
    """The registered model predicts without regressors: the rows the closure column closes ahead are kept at
    fit, so a served SeasonalNaive champion is 0 there, also once bucket parts are combined."""
    history, x = _with_open_flag(_daily())
    settings = Settings(frequency="D", horizon=7, season_length=7, backtest={"windows": 2}, source="series",
                        regressors={"series_columns": {"open": "planned"}}, closed={"column": "open"})
    backtest = run_backtest(history, settings, ["Naive", "SeasonalNaive"], regressors=x)
    champions = pd.DataFrame({"unique_id": sorted(history["unique_id"].unique()), "model": "SeasonalNaive"})
    future = x[x["ds"] > history["ds"].max()]
    shut = future.loc[future["open"] == 0, ["unique_id", "ds"]]
    assert 0 < len(shut) < len(future)
    whole = forecaster_for(settings, n_jobs=1).fit(history, champions, backtest, x)
    parts = [forecaster_for(settings, n_jobs=1).fit(history[history["unique_id"] == uid],
                                                    champions[champions["unique_id"] == uid], None, x,
                                                    whole._calibration.restricted([uid]), history["ds"].max())
             for uid in champions["unique_id"]]
    # A model fitted without the regressors knows no closure column: nothing is zeroed by it.
    unaware = forecaster_for(settings, n_jobs=1).fit(history, champions, backtest).predict()
    closed = unaware.merge(shut.assign(shut=True), on=["unique_id", "ds"], how="left")["shut"].fillna(False)
    closed = closed.to_numpy(dtype=bool)
    assert closed.sum() == len(shut) and (unaware.loc[closed, "y_hat"] > 0).any()
    for model in (whole, ChampionForecaster.combine(parts)):
        served = model.predict()
        assert (served.loc[closed, ["y_hat", "lo_80", "hi_80"]] == 0).all().all()
        pd.testing.assert_frame_equal(served[~closed], unaware[~closed])
