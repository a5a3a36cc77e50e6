"""Daily retail with drivers: today's default against the new one, and the global model against mlforecast used
directly (``python benchmarks/accuracy.py --daily``; figures in benchmarks/RESULTS.md).

Datasets (../shared/data, benchmarks only): Favorita store 1 (33 families, h 28; ``onpromotion`` and the
holiday flags planned, ``is_quake_period`` not used: it was not known in advance; the store is closed every
Jan 1 and Dec 25, declared in ``closed.dates``, Dec 25 rows added with y 0 since the source leaves them out)
and M5 CA_3 HOBBIES_2 daily (149 items, h 28, intermittent; SNAP and events planned, the price last_known,
``on_shelf`` declared as the closure column: an item not on the shelf cannot sell, and the assortment is
planned).

At each holdout (the last 28 days, and the 28-day blocks before it) everything after the holdout is dropped
and the product's own path runs on what is left: backtest, selection, champion fit, forecast. Scored: sMAPE
(mean over series, 0-200), WAPE (all rows: sum |error| / sum y, in %), coverage of the 80/95 intervals;
CPU-seconds per 1,000 series from resource.getrusage (this process and its finished children).

- ``today``: the daily zoo and settings before the drivers were used (no LightGBM, drivers ignored).
- ``new default``: the settings of settings/<dataset>_daily.yaml, zoo from zoo.default_models.
- ``LightGBM``: forecasting.global_model.forecast_global alone; ``bare``: mlforecast + LightGBM with the same
  features written here, for the accuracy and CPU ratio of the product's model to the library used directly.

``--choose`` scores global-model variants on the backtest windows *before* the earliest holdout (the data
the defaults may be chosen on), never on a holdout.
"""

from __future__ import annotations

import math
import os
import resource
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlforecast import MLForecast
from mlforecast.lag_transforms import RollingMean, SeasonalRollingMean
from mlforecast.target_transforms import LocalStandardScaler

from mlops_assets.forecasting.backtest import run_backtest
from mlops_assets.forecasting.closures import ClosedPeriods, mark_closed, zero_closed
from mlops_assets.forecasting.global_model import GlobalSpec, backtest_global, forecast_global, spec_for
from mlops_assets.forecasting.metrics import evaluate
from mlops_assets.forecasting.selection import choose_champions
from mlops_assets.forecasting.zoo import guard_metric, guard_windows
from mlops_assets.gold.regressors import holiday_days
from mlops_assets.registry.champion_model import forecaster_for
from mlops_assets.settings import Settings, load_settings

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("SHARED_DATA") or os.path.join(HERE, "..", "..", "shared", "data")
SETTINGS = os.path.join(HERE, "..", "settings")
# The daily zoo before this change: what a user got with default settings.
TODAY_ZOO = ["Naive", "SeasonalNaive", "WindowAverage", "CrostonOptimized", "ADIDA", "IMAPA", "TSB", "AutoETS",
             "AutoTheta", "MSTL"]


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn, *args, **kwargs):
    start = cpu_seconds()
    out = fn(*args, **kwargs)
    return out, cpu_seconds() - start


def favorita() -> tuple[pd.DataFrame, pd.DataFrame]:
    """history (unique_id, ds, y) and regressors (unique_id, ds, drivers, closed) of every day."""
    df = pd.read_csv(os.path.join(DATA, "favorita_daily_store1.csv"), parse_dates=["ds"])
    days = pd.date_range(df["ds"].min(), df["ds"].max(), freq="D")
    full = pd.MultiIndex.from_product([sorted(df["unique_id"].unique()), days], names=["unique_id", "ds"])
    df = df.set_index(["unique_id", "ds"]).reindex(full).reset_index()
    df["y"] = df["y"].fillna(0.0)
    return df, df


def m5_daily() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = pd.read_csv(os.path.join(DATA, "m5_daily_ca3_hobbies2.csv"), parse_dates=["ds"])
    df["sell_price"] = df.groupby("unique_id")["sell_price"].ffill().fillna(0.0)
    return df, df


DATASETS = {"favorita": (favorita, "favorita_daily.yaml"), "m5_daily": (m5_daily, "m5_daily.yaml")}


def regressors_of(df: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """What gold.regressors holds for these settings: the country's holidays and the declared series columns
    (0 where empty, last_known ones carried forward), and ``closed`` from the closure column."""
    columns = list(settings.regressors.series_columns)
    x = df[["unique_id", "ds", *columns]].copy()
    x[columns] = x[columns].fillna(0.0).astype(float)
    x["holiday_days"] = holiday_days(x["ds"], "D", settings.regressors.country)
    x["promo_depth"] = 0.0
    return x[["unique_id", "ds", *settings.regressors.use]]


def holdout_split(df: pd.DataFrame, h: int, origin: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    end = df["ds"].max() - pd.Timedelta(days=origin * h)
    cutoff = end - pd.Timedelta(days=h)
    train = df[df["ds"] <= cutoff][["unique_id", "ds", "y"]]
    test = df[(df["ds"] > cutoff) & (df["ds"] <= end)][["unique_id", "ds", "y"]]
    return train.reset_index(drop=True), test.reset_index(drop=True), cutoff


def scores(test: pd.DataFrame, forecasts: pd.DataFrame, closed: pd.Series | None = None) -> dict:
    """sMAPE (mean over series, 0-200) and WAPE (%) over the holdout's open days."""
    merged = test.merge(forecasts, on=["unique_id", "ds"], how="left")
    if closed is not None:
        merged = merged[~merged.merge(closed, on=["unique_id", "ds"], how="left")["closed"].fillna(False)
                        .to_numpy(dtype=bool)]
    y = merged["y"].to_numpy(float)
    f = np.clip(np.nan_to_num(merged["y_hat"].to_numpy(float)), 0, None)
    den = np.abs(y) + np.abs(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(den == 0, 0.0, 200 * np.abs(y - f) / den)
    out = {"smape": float(pd.Series(terms).groupby(merged["unique_id"].to_numpy()).mean().mean()),
           "wape": float(100 * np.abs(y - f).sum() / np.abs(y).sum())}
    for level in (80, 95):
        if f"lo_{level}" in merged:
            inside = (y >= merged[f"lo_{level}"] - 1e-9) & (y <= merged[f"hi_{level}"] + 1e-9)
            out[f"cov{level}"] = float(100 * inside.mean())
    return out


def closed_rows(x: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    periods = ClosedPeriods.from_settings(settings)
    mask = periods.rows_mask(x)
    return x[["unique_id", "ds"]].assign(closed=mask)


def product_default(train, x, settings: Settings, backtest: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The product's path after the backtest: evaluation, guard, champion fit and forecast."""
    evaluation = evaluate(backtest, train, settings.season)
    champions, decision = choose_champions(
        evaluation, backtest, train, settings.season, mode=settings.selection.mode,
        tolerance=settings.selection.global_tolerance, margin=settings.selection.margin,
        guard_windows=guard_windows(settings), metric=settings.selection.metric, guard_metric=guard_metric(settings))
    forecasts = forecaster_for(settings, n_jobs=1).fit(train, champions[["unique_id", "model"]], backtest, x).predict()
    forecasts = zero_closed(forecasts, ClosedPeriods.from_settings(settings), x)
    mix = champions["model"].value_counts(normalize=True).round(2).head(3).to_dict()
    return forecasts, {"mode": decision["mode"], "mix": mix}


def week(dates: pd.DatetimeIndex) -> np.ndarray:
    return dates.isocalendar().week.to_numpy(float)


def bare_baseline(train: pd.DataFrame, x: pd.DataFrame, settings: Settings, statics: pd.DataFrame | None):
    """mlforecast + LightGBM used directly, with the features of the product's daily global model."""
    h, season = settings.horizon, settings.season
    first = season * math.ceil(h / season)
    lags = [first + season * k for k in range(4)] + [364]
    x = x.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    pos = x.groupby("unique_id").cumcount().astype(float)
    hol = pd.Series(np.where(x["holiday_days"] > 0, pos, np.nan))
    x["days_since_holiday"] = np.minimum(pos - hol.groupby(x["unique_id"]).ffill(), 30).fillna(30)
    x["days_to_holiday"] = np.minimum(hol.groupby(x["unique_id"]).bfill() - pos, 30).fillna(30)
    closed = x.pop("closed") if "closed" in x else pd.Series(False, index=x.index)
    data = train.merge(x.assign(weight=(~closed.astype(bool)).astype(float)), on=["unique_id", "ds"], how="left")
    if statics is not None:
        data = data.merge(statics.astype({c: "category" for c in statics.columns if c != "unique_id"}),
                          on="unique_id")
    model = lgb.LGBMRegressor(**spec_for("D").trees, min_child_samples=20, subsample=0.8, subsample_freq=1,
                              colsample_bytree=0.8, random_state=settings.seed, n_jobs=1, verbosity=-1,
                              deterministic=True)
    mlf = MLForecast(
        models={"bare": model}, freq="D", lags=lags,
        lag_transforms={first: [RollingMean(7), RollingMean(28), SeasonalRollingMean(7, 4)]},
        date_features=["dayofweek", "day", week, "month"],
        target_transforms=[LocalStandardScaler()],
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlf.fit(data, static_features=[c for c in (statics.columns if statics is not None else [])
                                       if c != "unique_id"], dropna=False, weight_col="weight")
        future = x[x["ds"] > train["ds"].max()]
        out = mlf.predict(h, X_df=future)
    out = out.rename(columns={"bare": "y_hat"})
    shut = out.merge(x.assign(closed=closed)[["unique_id", "ds", "closed"]], on=["unique_id", "ds"])["closed"]
    out.loc[shut.to_numpy(bool), "y_hat"] = 0.0
    return out


# Attributes of a series that do not change: Favorita's store attributes are one store's, so only the family
# varies; M5's items have none beside their id.
STATICS = {"favorita": ["family"], "m5_daily": []}


def statics_of(df: pd.DataFrame, name: str) -> pd.DataFrame | None:
    columns = STATICS[name]
    return df.drop_duplicates("unique_id")[["unique_id", *columns]] if columns else None


def holdout(name: str, origin: int, lean: bool = False) -> dict:
    load, file = DATASETS[name]
    df, raw = load()
    settings = load_settings(os.path.join(SETTINGS, file))
    train, test, cutoff = holdout_split(df, settings.horizon, origin)
    x = regressors_of(raw[raw["ds"] <= cutoff + pd.Timedelta(days=settings.horizon)], settings)
    x = x.merge(closed_rows(x, settings), on=["unique_id", "ds"])
    # The product passes no static attributes yet (see docs/forecasting-defaults.md): neither do these runs.
    statics = None
    n = train["unique_id"].nunique()
    today = settings.model_copy(update={"regressors": settings.regressors.model_copy(
        update={"series_columns": {}, "use": ["promo_depth", "holiday_days"]}),
        "closed": settings.closed.model_copy(update={"column": None}),
        "selection": settings.selection.model_copy(update={"guard_metric": "smape", "guard_windows": 1})})
    row = {"dataset": name, "origin": origin, "cutoff": str(cutoff.date()), "series": n}
    shut = x[["unique_id", "ds", "closed"]]
    wall = time.perf_counter()
    if not lean:
        # The StatsForecast zoo's backtest is the same in both (same models, data and cutoffs): run once, its
        # CPU counted in both; the new default adds the global model's and the closure column's marks.
        zoo_bt, zoo_cpu = timed(run_backtest, train, today, TODAY_ZOO, 1)
        (fc, info), cpu = timed(product_default, train, None, today, zoo_bt)
        row.update({f"today_{k}": v for k, v in scores(test, fc, shut).items()},
                   today_cpu_1k=1000 * (zoo_cpu + cpu) / n, today_mode=f"{info['mode']} {info['mix']}")
        from mlops_assets.forecasting.zoo import declared_drivers, default_models

        models = default_models(settings, declared_drivers(settings))
        extra = [m for m in models if m not in TODAY_ZOO]
        assert set(TODAY_ZOO) <= set(models), models
        new_bt, gbm_cpu = timed(run_backtest, train, settings, extra, 1, x)
        new_bt = pd.concat([mark_closed(zoo_bt.drop(columns="closed"), ClosedPeriods.from_settings(settings), x),
                            new_bt], ignore_index=True)
        (fc, info), cpu = timed(product_default, train, x, settings, new_bt)
        row.update({f"new_{k}": v for k, v in scores(test, fc, shut).items()},
                   new_cpu_1k=1000 * (zoo_cpu + gbm_cpu + cpu) / n, new_mode=f"{info['mode']} {info['mix']}")
        from statsforecast import StatsForecast

        from mlops_assets.forecasting.zoo import build_fallback, build_models
        sn = StatsForecast(models=build_models(["SeasonalNaive"], 7, settings.horizon), freq="D",
                           fallback_model=build_fallback(7, settings.horizon)).forecast(df=train, h=settings.horizon)
        row.update({f"sn_{k}": v for k, v in scores(test, sn.rename(columns={"SeasonalNaive": "y_hat"}),
                                                       shut).items()})
    fc, cpu = timed(forecast_global, train, x, "D", settings.season, settings.horizon,
                    last_known=settings.regressors.unknown_future, seed=settings.seed, statics=statics)
    row.update({f"gbm_{k}": v for k, v in scores(test, fc, shut).items()}, gbm_cpu_1k=1000 * cpu / n)
    bare_x = x.copy()
    for column in settings.regressors.unknown_future:
        bare_x = bare_x.assign(**{column: bare_x[column].where(bare_x["ds"] <= cutoff)})
        bare_x[column] = bare_x.groupby("unique_id")[column].ffill()
    fc, cpu = timed(bare_baseline, train, bare_x, settings, statics)
    row.update({f"bare_{k}": v for k, v in scores(test, fc, shut).items()}, bare_cpu_1k=1000 * cpu / n)
    row.update(wall_s=time.perf_counter() - wall, load=os.getloadavg()[0])
    return row


CAL = ("dayofweek", "day", "week", "month")
# The variants measured on the backtest windows before the earliest holdout (RESULTS.md); the daily default is
# the best of them on WAPE over both datasets.
VARIANTS = {
    "recursive/scale (weekly lags)": GlobalSpec(calendar=CAL, holiday_distance=True),
    "long lags/scale": GlobalSpec(strategy="long_lags", calendar=CAL, holiday_distance=True),
    "long lags/scale/no holiday distance": GlobalSpec(strategy="long_lags", calendar=CAL),
    "long lags/scale/500 trees": GlobalSpec(strategy="long_lags", calendar=CAL, holiday_distance=True,
                                            trees={"n_estimators": 500, "learning_rate": 0.03, "num_leaves": 31}),
    "long lags/log1p": GlobalSpec(strategy="long_lags", target="log1p", calendar=CAL, holiday_distance=True),
    "long lags/log1p+scale": GlobalSpec(strategy="long_lags", target="log1p+scale", calendar=CAL,
                                        holiday_distance=True),
    "long lags/tweedie": GlobalSpec(strategy="long_lags", target="none", calendar=CAL, holiday_distance=True,
                                    trees={"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 31,
                                           "objective": "tweedie"}),
    "direct/scale/100 trees": GlobalSpec(strategy="direct", calendar=CAL, holiday_distance=True,
                                         trees={"n_estimators": 100, "learning_rate": 0.1, "num_leaves": 31}),
}


def choose(name: str, origins: int = 4, only: str | None = None) -> list[dict]:
    """Global-model variants on the 3 backtest windows before the earliest holdout (never on a holdout)."""
    load, file = DATASETS[name]
    df, raw = load()
    settings = load_settings(os.path.join(SETTINGS, file))
    train, _, cutoff = holdout_split(df, settings.horizon, origins - 1)
    x = regressors_of(raw[raw["ds"] <= cutoff], settings)
    x = x.merge(closed_rows(x, settings), on=["unique_id", "ds"])
    shut = x[["unique_id", "ds", "closed"]]
    statics = statics_of(raw, name)
    rows = []
    for label, spec in VARIANTS.items():
        if only and not any(label.startswith(o) for o in only.split(";")):
            continue
        for with_statics in (False, True) if statics is not None else (False,):
            bt, cpu = timed(backtest_global, train, x, "D", settings.season, settings.horizon, 3, settings.horizon,
                            settings.regressors.unknown_future, settings.seed, statics if with_statics else None, spec)
            s = scores(bt[["unique_id", "ds", "y"]], bt[["unique_id", "ds", "y_hat"]], shut)
            rows.append({"dataset": name, "variant": label, "statics": with_statics, **s, "cpu_s": cpu,
                         "load": os.getloadavg()[0]})
            print(rows[-1], flush=True)
    return rows


def print_holdouts(rows: list[dict]) -> None:
    frame = pd.DataFrame(rows)
    shown = [c for c in ("dataset", "origin", "cutoff", "series", "sn_wape", "today_wape", "new_wape", "gbm_wape",
                         "bare_wape", "sn_smape", "today_smape", "new_smape", "gbm_smape", "bare_smape", "new_cov80",
                         "new_cov95", "today_cpu_1k", "new_cpu_1k", "gbm_cpu_1k", "bare_cpu_1k", "wall_s", "load")
             if c in frame]
    print(frame[shown].round(2).to_string(index=False))
    for column in ("today_mode", "new_mode"):
        if column in frame:
            print(column, frame[column].tolist())
    means = frame.groupby("dataset")[[c for c in shown if frame[c].dtype.kind == "f"]].mean()
    if "sn_wape" in means:
        means["new_vs_sn_wape"] = means["new_wape"] / means["sn_wape"]
    means["gbm_vs_bare_wape"] = means["gbm_wape"] / means["bare_wape"]
    means["gbm_vs_bare_cpu"] = means["gbm_cpu_1k"] / means["bare_cpu_1k"]
    print("\nmean over holdouts")
    print(means.round(3).T.to_string())


def run_daily(datasets: list[str], origins: int, choose_only: bool, lean: bool = bool(os.environ.get("LEAN"))
              ) -> None:
    if choose_only:
        rows = [r for name in datasets for r in choose(name, origins, os.environ.get("VARIANTS"))]
        rows += [r for name in datasets for r in choose_metric(name, origins)]
        print(pd.DataFrame(rows).round(3).to_string(index=False))
        return
    rows = []
    for name in datasets:
        for origin in range(origins):
            rows.append(holdout(name, origin, lean))
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    print_holdouts(rows)


def choose_metric(name: str, origins: int = 4) -> list[dict]:
    """The selection metric for daily data, chosen on the backtest before the earliest holdout: champions
    picked (guard included) on its earlier windows with each metric, scored on its last window."""
    from mlops_assets.forecasting.zoo import declared_drivers, default_models

    load, file = DATASETS[name]
    df, raw = load()
    settings = load_settings(os.path.join(SETTINGS, file))
    train, _, cutoff = holdout_split(df, settings.horizon, origins - 1)
    x = regressors_of(raw[raw["ds"] <= cutoff], settings)
    backtest = run_backtest(train, settings, default_models(settings, declared_drivers(settings)), 1, x)
    last = backtest["cutoff"] == backtest["cutoff"].max()
    earlier = backtest[~last]
    rows = []
    for metric in ("smape", "mase", "wape"):
        champions, decision = choose_champions(
            evaluate(earlier, train, settings.season), earlier, train, settings.season, metric=metric)
        window = backtest[last & ~backtest["closed"]].merge(champions[["unique_id", "model"]],
                                                            on=["unique_id", "model"])
        rows.append({"dataset": name, "metric": metric, **scores(window[["unique_id", "ds", "y"]],
                                                                window[["unique_id", "ds", "y_hat"]]),
                     "mode": decision["mode"], "mix": champions["model"].value_counts().head(3).to_dict()})
        print(rows[-1], flush=True)
    return rows
