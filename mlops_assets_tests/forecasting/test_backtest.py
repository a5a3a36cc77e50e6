import numpy as np
import pandas as pd
import pytest

from mlops_assets.forecasting.backtest import BACKTEST_COLUMNS, run_backtest
from mlops_assets.forecasting.zoo import (
    DEFAULT_ZOO,
    MODEL_NAMES,
    STATSFORECAST_NAMES,
    build_models,
    default_models,
)
from mlops_assets.settings import Settings

SETTINGS = Settings(horizon=4, season_length=4, backtest={"windows": 3})
MODELS = ["Naive", "SeasonalNaive", "WindowAverage", "CrostonOptimized"]


def _series(uid: str, n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = 20 + 5 * np.sin(2 * np.pi * np.arange(n) / 4) + rng.normal(0, 1, n)
    ds = pd.date_range("2022-01-03", periods=n, freq="W-MON")
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": y})


def test_long_format_sorted_and_complete():
    df = pd.concat([_series("b", seed=1), _series("a", n=36, seed=2)], ignore_index=True)
    bt = run_backtest(df, SETTINGS, models=MODELS, n_jobs=1)
    assert list(bt.columns) == BACKTEST_COLUMNS
    assert len(bt) == 2 * len(MODELS) * 3 * 4
    assert bt.equals(bt.sort_values(["unique_id", "model", "cutoff", "ds"]).reset_index(drop=True))
    a = bt[(bt["unique_id"] == "a") & (bt["model"] == "Naive")]
    series_a = _series("a", n=36, seed=2)
    assert a["cutoff"].unique().tolist() == series_a["ds"].iloc[[23, 27, 31]].tolist()
    # Naive forecasts the value at the cutoff; y is the actual of ds.
    first = a[a["cutoff"] == series_a["ds"].iloc[23]]
    np.testing.assert_allclose(first["y_hat"], series_a["y"].iloc[23])
    np.testing.assert_allclose(first["y"], series_a["y"].iloc[24:28])


def test_no_leakage_future_values_do_not_move_forecasts():
    clean = _series("s", n=40)
    poisoned = clean.copy()
    poisoned.loc[32:, "y"] = 1e9  # everything after the first cutoff (index 31) is absurd
    names = ["Naive", "SeasonalNaive", "WindowAverage", "AutoETS", "AutoTheta", "TSB"]
    settings = Settings(horizon=4, season_length=4, backtest={"windows": 2})
    bt_clean = run_backtest(clean, settings, models=names, n_jobs=1)
    bt_poisoned = run_backtest(poisoned, settings, models=names, n_jobs=1)
    first_cutoff = clean["ds"].iloc[31]
    a = bt_clean[bt_clean["cutoff"] == first_cutoff].reset_index(drop=True)
    b = bt_poisoned[bt_poisoned["cutoff"] == first_cutoff].reset_index(drop=True)
    np.testing.assert_allclose(a["y_hat"], b["y_hat"])
    # ... and they equal forecasts from the series truncated at the cutoff.
    truncated = clean.iloc[:36]
    bt_trunc = run_backtest(truncated, Settings(horizon=4, season_length=4, backtest={"windows": 1}),
                            models=names, n_jobs=1)
    np.testing.assert_allclose(bt_trunc["y_hat"], a["y_hat"])


def test_guards_name_the_series():
    df = pd.concat([_series("ok"), _series("bad")], ignore_index=True)
    df.loc[45, "y"] = np.inf
    with pytest.raises(ValueError, match="bad"):
        run_backtest(df, SETTINGS, models=MODELS, n_jobs=1)
    short = pd.concat([_series("ok"), _series("tiny", n=10)], ignore_index=True)
    with pytest.raises(ValueError, match=r"tiny \(10\)"):
        run_backtest(short, SETTINGS, models=MODELS, n_jobs=1)
    with pytest.raises(ValueError, match="supported"):
        run_backtest(_series("ok"), SETTINGS, models=["Prophet"], n_jobs=1)


def test_short_training_window_gives_nan_not_failure():
    # SeasonalNaive(52) cannot forecast from 12 weeks: NaN, and the other models still run.
    settings = Settings(horizon=4, season_length=52, backtest={"windows": 2})
    bt = run_backtest(_series("s", n=20), settings, models=["Naive", "SeasonalNaive"], n_jobs=1)
    assert bt.loc[bt["model"] == "SeasonalNaive", "y_hat"].isna().all()
    assert bt.loc[bt["model"] == "Naive", "y_hat"].notna().all()


def test_zoo():
    assert set(["Naive", "SeasonalNaive", "AutoETS", "AutoARIMA", "TSB", "IMAPA"]) <= set(MODEL_NAMES)
    assert "AutoARIMA" not in DEFAULT_ZOO["W"]
    assert default_models(Settings()) == DEFAULT_ZOO["W"]
    assert default_models(Settings(frequency="MS")) == DEFAULT_ZOO["MS"]
    assert default_models(Settings(frequency="D")) == DEFAULT_ZOO["D"]
    assert default_models(Settings(models=["Naive"])) == ["Naive"]
    models = build_models(list(STATSFORECAST_NAMES), season_length=52, horizon=13)
    assert [m.alias for m in models] == list(STATSFORECAST_NAMES)
    with pytest.raises(ValueError, match="not a StatsForecast model"):
        build_models(["LightGBM"], 52, 13)
    for m in models:
        if getattr(m, "only_conformal_intervals", False):
            assert m.prediction_intervals.h == 13
    with pytest.raises(ValueError, match="supported"):
        build_models(["Nope"], 52, 13)


def test_models_without_own_intervals_need_backtest_intervals():
    with pytest.raises(ValueError, match="no intervals of their own"):
        Settings(intervals={"method": "model"}, models=["Naive", "LightGBM"])
    plain = default_models(Settings(intervals={"method": "model"}))
    assert "LightGBM" not in plain and "Combination" not in plain


def _driver_inputs(series: pd.DataFrame, declared: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame, Settings]:
    """A series file with drivers through the product's path: gold, then gold.regressors."""
    from mlops_assets.gold.aggregation import build_gold_from_series
    from mlops_assets.gold.regressors import build_regressors

    settings = Settings(source="series", horizon=4, season_length=4, backtest={"windows": 2},
                        regressors={"series_columns": declared, "country": None})
    gold, _ = build_gold_from_series(series, settings)
    x = build_regressors(gold, None, settings.frequency, settings.horizon, settings.grain, None, series, declared)
    return gold, x.drop(columns="is_future"), settings


def test_a_last_known_series_column_gives_the_backtest_only_its_value_at_each_cutoff():
    from mlops_assets_tests.driver_series import SERIES_COLUMNS, driver_series

    series = driver_series()
    # Absurd prices after the last cutoff (the last window's actual prices) and in the planned rows.
    last_cutoff = series.loc[series["y"].notna(), "ds"].max() - pd.Timedelta(weeks=4)
    absurd = series.assign(price=np.where(series["ds"] > last_cutoff, 1e6, series["price"]))

    def lightgbm(frame: pd.DataFrame, declared: dict[str, str]) -> pd.DataFrame:
        gold, x, settings = _driver_inputs(frame, declared)
        return run_backtest(gold[["unique_id", "ds", "y"]], settings, models=["LightGBM"], n_jobs=1, regressors=x)

    base = lightgbm(series, SERIES_COLUMNS)
    assert base["ds"].max() == last_cutoff + pd.Timedelta(weeks=4)  # the planned rows are never scored
    pd.testing.assert_frame_equal(lightgbm(absurd, SERIES_COLUMNS), base)
    # Declared planned, the same prices are known ahead and move the last window: the test can fail.
    planned = {**SERIES_COLUMNS, "price": "planned"}
    leaky, honest = lightgbm(absurd, planned), lightgbm(series, planned)
    last = leaky["cutoff"] == last_cutoff
    assert not np.allclose(leaky.loc[last, "y_hat"], honest.loc[last, "y_hat"])
    np.testing.assert_allclose(leaky.loc[~last, "y_hat"], honest.loc[~last, "y_hat"])
