import cloudpickle
import numpy as np
import pandas as pd
import pytest

from mlops_assets.forecasting.backtest import run_backtest
from mlops_assets.registry.champion_model import (
    ChampionForecaster,
    ForecastRequestError,
    HorizonError,
    LevelError,
    UnknownSeriesError,
    forecast_champions,
)
from mlops_assets.settings import Settings


def _history(n_series: int = 6, n: int = 60, season: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ds = pd.date_range("2023-01-02", periods=n, freq="W-MON")
    frames = []
    for i in range(n_series):
        pattern = 10 + 5 * np.sin(2 * np.pi * np.arange(n) / season)
        y = np.maximum(pattern + rng.normal(0, 1, n) + i, 0)
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": y}))
    return pd.concat(frames, ignore_index=True)


CHAMPIONS = pd.DataFrame(
    {
        "unique_id": ["s0", "s1", "s2", "s3", "s4", "s5"],
        "model": ["SeasonalNaive", "Naive", "CrostonOptimized", "SeasonalNaive", "WindowAverage", "AutoETS"],
    }
)


@pytest.fixture(scope="module")
def fitted() -> ChampionForecaster:
    return ChampionForecaster("W-MON", season_length=4, horizon=8).fit(_history(), CHAMPIONS)


def test_series_table(fitted):
    series = fitted.series
    assert series["unique_id"].tolist() == ["s0", "s1", "s2", "s3", "s4", "s5"]
    assert series["model"].tolist() == CHAMPIONS["model"].tolist()
    assert series["fitted_model"].tolist() == CHAMPIONS["model"].tolist()
    assert (series["train_end"] == pd.Timestamp("2023-01-02") + pd.Timedelta(weeks=59)).all()


def test_predict_shape_dates_and_columns(fitted):
    out = fitted.predict()
    assert list(out.columns) == ["unique_id", "ds", "model", "horizon_step", "y_hat", "lo_80", "hi_80", "lo_95",
                                 "hi_95"]
    assert len(out) == 6 * 8
    first = out[out["unique_id"] == "s0"]
    expected = pd.date_range(pd.Timestamp("2023-01-02") + pd.Timedelta(weeks=60), periods=8, freq="W-MON")
    assert first["ds"].tolist() == expected.tolist()
    assert out["ds"].dtype == "datetime64[ns]"
    assert (out[["y_hat", "lo_80", "hi_80", "lo_95", "hi_95"]] >= 0).all().all()
    assert (out["lo_95"] <= out["lo_80"] + 1e-9).all() and (out["lo_80"] <= out["y_hat"] + 1e-9).all()
    assert (out["y_hat"] <= out["hi_80"] + 1e-9).all() and (out["hi_80"] <= out["hi_95"] + 1e-9).all()
    assert out["model"].tolist() == np.repeat(CHAMPIONS["model"].to_numpy(), 8).tolist()


def test_seasonal_naive_repeats_last_season(fitted):
    history = _history()
    last = history[history["unique_id"] == "s0"]["y"].to_numpy()[-4:]
    out = fitted.predict(["s0"])
    np.testing.assert_allclose(out["y_hat"].to_numpy(), np.tile(last, 2))


def test_conformal_intervals_for_models_without_native_ones(fitted):
    out = fitted.predict(["s2", "s4"])
    assert out[["lo_80", "hi_80", "lo_95", "hi_95"]].notna().all().all()
    assert (out["hi_95"] - out["lo_95"] > 0).all()


def test_subset_h_and_levels(fitted):
    full = fitted.predict()
    part = fitted.predict(["s3", "s1"], h=3, levels=[50])
    assert list(part.columns) == ["unique_id", "ds", "model", "horizon_step", "y_hat", "lo_50", "hi_50"]
    assert part["unique_id"].tolist() == ["s1"] * 3 + ["s3"] * 3
    expected = full[full["unique_id"].isin(["s1", "s3"])].groupby("unique_id").head(3)
    np.testing.assert_allclose(part["y_hat"].to_numpy(), expected["y_hat"].to_numpy())


def test_deterministic_and_picklable(fitted):
    again = ChampionForecaster("W-MON", season_length=4, horizon=8).fit(_history(), CHAMPIONS)
    pd.testing.assert_frame_equal(again.predict(), fitted.predict())
    restored = cloudpickle.loads(cloudpickle.dumps(fitted))
    pd.testing.assert_frame_equal(restored.predict(), fitted.predict())
    pd.testing.assert_frame_equal(restored.series, fitted.series)


def test_request_errors(fitted):
    with pytest.raises(HorizonError, match="h=20 is beyond the trained horizon of 8"):
        fitted.predict(h=20)
    with pytest.raises(HorizonError):
        fitted.predict(h=0)
    with pytest.raises(LevelError, match="100"):
        fitted.predict(levels=[80, 100])
    with pytest.raises(UnknownSeriesError, match="'nope'"):
        fitted.predict(["s0", "nope"])
    many = [f"x{i:02d}" for i in range(12)]
    with pytest.raises(UnknownSeriesError, match="and 2 more") as info:
        fitted.predict(many)
    assert "x09" in str(info.value) and "x10" not in str(info.value)
    assert issubclass(ForecastRequestError, ValueError)


def test_fallback_when_champion_cannot_forecast():
    # SeasonalNaive(52) has no value for positions beyond a 30-week history: refitted with Naive.
    history = _history(n_series=2, n=30)
    champions = pd.DataFrame({"unique_id": ["s0", "s1"], "model": ["SeasonalNaive", "Naive"]})
    forecaster = ChampionForecaster("W-MON", season_length=52, horizon=4).fit(history, champions)
    assert forecaster.series["model"].tolist() == ["SeasonalNaive", "Naive"]
    assert forecaster.series["fitted_model"].tolist() == ["Naive", "Naive"]
    out = forecaster.predict()
    assert out.drop(columns=["unique_id", "ds", "model"]).notna().all().all()
    last = history[history["unique_id"] == "s0"]["y"].iloc[-1]
    np.testing.assert_allclose(out.loc[out["unique_id"] == "s0", "y_hat"], last)


def _champ(uid: str, model: str) -> pd.DataFrame:
    return pd.DataFrame({"unique_id": [uid], "model": [model]})


def test_fit_rejects_bad_input():
    history = _history(n_series=2)
    with pytest.raises(ValueError, match="no history"):
        ChampionForecaster("W-MON", 4, 4).fit(history, _champ("zz", "Naive"))
    bad = history.copy()
    bad.loc[3, "y"] = np.nan
    with pytest.raises(ValueError, match="s0"):
        ChampionForecaster("W-MON", 4, 4).fit(bad, CHAMPIONS.head(2))
    with pytest.raises(ValueError, match="supported"):
        ChampionForecaster("W-MON", 4, 4).fit(history, _champ("s0", "Prophet"))


def test_forecast_champions_uses_settings():
    settings = Settings(horizon=5, season_length=4, interval_levels=[90])
    history = _history(n_series=2)
    with pytest.raises(ValueError, match="backtest"):
        forecast_champions(history, CHAMPIONS.head(2), settings)
    backtest = run_backtest(history, settings, models=["Naive", "SeasonalNaive"])
    out = forecast_champions(history, CHAMPIONS.head(2), settings, backtest)
    assert list(out.columns) == ["unique_id", "ds", "model", "horizon_step", "y_hat", "lo_90", "hi_90"]
    assert len(out) == 10


def _widths_never_shrink(out: pd.DataFrame, levels=(80, 95)) -> bool:
    ordered = out.sort_values(["unique_id", "ds"])
    for lv in levels:
        for side, sign in (("hi", 1), ("lo", -1)):
            width = sign * (ordered[f"{side}_{lv}"] - ordered["y_hat"])
            if (width.groupby(ordered["unique_id"]).diff().dropna() < -1e-9).any():
                return False
    return True


def test_models_own_intervals_never_narrow_with_the_step():
    # WindowAverage's conformal intervals come from a few windows per step and jump between steps.
    history = _history(n_series=3, n=120)
    champions = pd.DataFrame({"unique_id": ["s0", "s1", "s2"], "model": "WindowAverage"})
    out = ChampionForecaster("W-MON", season_length=4, horizon=8, clip="never").fit(history, champions).predict()
    assert _widths_never_shrink(out)


def test_short_series_keep_their_model_with_conformal_windows_that_fit():
    # 70 weeks, horizon 13: room for 4 conformal windows, not the default 5 (which needed 78 weeks).
    history = _history(n_series=2, n=70)
    champions = pd.DataFrame({"unique_id": ["s0", "s1"], "model": "WindowAverage"})
    forecaster = ChampionForecaster("W-MON", season_length=4, horizon=13).fit(history, champions)
    assert forecaster.series["fitted_model"].tolist() == ["WindowAverage", "WindowAverage"]
    out = forecaster.predict()
    assert (out["model"] == "WindowAverage").all()
    assert np.isfinite(out[["lo_80", "hi_80", "lo_95", "hi_95"]].to_numpy()).all()


def test_backtest_intervals_never_narrow_and_widen_with_the_series_errors():
    settings = Settings(horizon=8, season_length=4, backtest={"windows": 3})
    history = _history(n_series=3, n=80)
    noisy = history["unique_id"] == "s2"
    history.loc[noisy, "y"] += np.random.default_rng(1).normal(0, 5, noisy.sum()).clip(-5, None)
    champions = pd.DataFrame({"unique_id": ["s0", "s1", "s2"], "model": "SeasonalNaive"})
    backtest = run_backtest(history, settings, models=["SeasonalNaive"])
    forecaster = ChampionForecaster("W-MON", 4, 8, intervals="backtest", clip="never")
    forecaster.fit(history, champions, backtest)
    out = forecaster.predict()
    assert _widths_never_shrink(out)
    width = (out["hi_80"] - out["lo_80"]).groupby(out["unique_id"]).mean()
    assert width["s2"] > 2 * width["s0"]
    assert cloudpickle.loads(cloudpickle.dumps(forecaster)).predict().equals(out)


def test_clipping_follows_the_history_unless_set():
    # Returns make the last weeks negative: 'auto' forecasts them as they are, 'always' clips at 0.
    history = _history(n_series=1, n=30)
    history.loc[history.index[-3:], "y"] = -4.0
    champions = _champ("s0", "Naive")
    auto = ChampionForecaster("W-MON", 4, 4).fit(history, champions)
    assert not auto.clipped
    out = auto.predict()
    assert (out["y_hat"] == -4.0).all() and (out["lo_95"] < -4.0).all()
    clipped = ChampionForecaster("W-MON", 4, 4, clip="always").fit(history, champions).predict()
    assert (clipped[["y_hat", "lo_80", "lo_95"]] == 0).all().all()
    positive = _history(n_series=1, n=30)
    assert ChampionForecaster("W-MON", 4, 4).fit(positive, champions).clipped

    small = positive.assign(y=positive["y"] - positive["y"].min() + 0.1)
    never = ChampionForecaster("W-MON", 4, 4, clip="never").fit(small, champions).predict()
    assert (never["lo_95"] < 0).any()
    # 'auto' decides per series: the series with returns is spared, the other (whose interval reaches
    # below 0) clipped.
    both = pd.concat([history, small.assign(unique_id="s1")])
    two = ChampionForecaster("W-MON", 4, 4).fit(both, pd.DataFrame({"unique_id": ["s0", "s1"], "model": "Naive"}))
    out = two.predict().set_index("unique_id")
    assert (out.loc["s0", "y_hat"] == -4.0).all() and (out.loc["s1", "lo_95"] == 0).any()
    assert not two.clipped
    with pytest.raises(ValueError, match="clip"):
        ChampionForecaster("W-MON", 4, 4, clip="sometimes")


def test_global_model_and_combination_champions_are_fitted_and_named():
    settings = Settings(horizon=8, season_length=4, backtest={"windows": 2})
    history = _history(n_series=4, n=80)
    holidays = history[["unique_id", "ds"]].drop_duplicates()
    future = pd.DataFrame({"unique_id": np.repeat([f"s{i}" for i in range(4)], 8),
                           "ds": np.tile(pd.date_range(history["ds"].max(), periods=9, freq="W-MON")[1:], 4)})
    regressors = pd.concat([holidays, future]).assign(holiday_days=0.0)
    models = ["Naive", "SeasonalNaive", "LightGBM", "Combination"]
    backtest = run_backtest(history, settings, models=models, regressors=regressors)
    assert set(backtest["model"]) == set(models)
    champions = pd.DataFrame({"unique_id": ["s0", "s1", "s2", "s3"],
                              "model": ["LightGBM", "Combination", "Naive", "LightGBM"]})
    with pytest.raises(ValueError, match="intervals='backtest'"):
        ChampionForecaster("W-MON", 4, 8, intervals="model").fit(history, champions, backtest, regressors)
    forecaster = ChampionForecaster("W-MON", 4, 8, intervals="backtest").fit(history, champions, backtest, regressors)
    assert forecaster.series["fitted_model"].tolist() == champions["model"].tolist()
    out = forecaster.predict(h=5)
    assert len(out) == 20 and np.isfinite(out[["y_hat", "lo_80", "hi_95"]].to_numpy()).all()
    assert _widths_never_shrink(out) or not forecaster.clipped
    again = cloudpickle.loads(cloudpickle.dumps(forecaster)).predict(h=5)
    pd.testing.assert_frame_equal(again, out)


def test_the_champion_forecast_uses_planned_series_columns_and_only_the_last_known_price():
    from mlops_assets.gold.aggregation import build_gold_from_series
    from mlops_assets.gold.regressors import build_regressors
    from mlops_assets_tests.driver_series import SERIES_COLUMNS, driver_series

    settings = Settings(source="series", horizon=4, season_length=4, backtest={"windows": 2},
                        regressors={"series_columns": SERIES_COLUMNS, "country": None})

    def forecast(series: pd.DataFrame) -> pd.DataFrame:
        gold, _ = build_gold_from_series(series, settings)
        x = build_regressors(gold, None, "W-MON", 4, ["product_id"], None, series, SERIES_COLUMNS)
        history = gold[["unique_id", "ds", "y"]]
        backtest = run_backtest(history, settings, models=["Naive", "LightGBM"], n_jobs=1, regressors=x)
        champions = pd.DataFrame({"unique_id": sorted(history["unique_id"].unique()), "model": "LightGBM"})
        return forecast_champions(history, champions, settings, backtest, x)

    series = driver_series()
    planned = series["y"].isna()
    base = forecast(series)
    # A price in the planned rows is not known ahead (last_known): it changes nothing.
    pd.testing.assert_frame_equal(forecast(series.assign(price=series["price"].where(~planned, 1e6))), base)
    # The planned promotions are: every future week promoted lifts the forecast.
    promoted = forecast(series.assign(promo_flag=series["promo_flag"].where(~planned, 1.0)))
    assert promoted["y_hat"].sum() > 1.2 * base["y_hat"].sum()


def test_forecasters_of_disjoint_series_combine_into_the_one_fitted_on_all():
    history = _history()
    whole = ChampionForecaster("W-MON", season_length=4, horizon=8).fit(history, CHAMPIONS)
    halves = [CHAMPIONS.iloc[[0, 3, 5]], CHAMPIONS.iloc[[1, 2, 4]]]
    parts = [ChampionForecaster("W-MON", season_length=4, horizon=8).fit(history, c) for c in halves]
    combined = ChampionForecaster.combine(parts)
    pd.testing.assert_frame_equal(combined.predict(), whole.predict())
    pd.testing.assert_frame_equal(combined.series, whole.series)
    assert combined.clipped == whole.clipped
    with pytest.raises(ValueError, match="more than one part"):
        ChampionForecaster.combine([parts[0], parts[0]])
    other = ChampionForecaster("W-MON", season_length=4, horizon=6).fit(history, halves[1])
    with pytest.raises(ValueError, match=r"different settings.*horizon"):
        ChampionForecaster.combine([parts[0], other])
