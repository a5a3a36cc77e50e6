"""Does per-series champion selection pay? Holdout SMAPE of the champions vs each model used everywhere.

For each dataset the last horizon of every series is held out from everything; the backtest, evaluation
and selection run on the rest; the champions are fitted (ChampionForecaster, the product's path) and scored
on the holdout, next to SeasonalNaive and every zoo model used for all series (one StatsForecast forecast).
Two single-model baselines are printed: the best in hindsight (the best holdout score, which nobody could
have picked in advance) and the one a team would have picked in advance (the best on the same backtest).

``--origins N`` repeats the whole protocol with the holdout moved back by 1..N-1 horizons (everything after
the holdout is dropped as well), to tell a rule that is robust from one that was lucky at the last origin.

    python benchmarks/accuracy.py                      # all three datasets, default zoos
    python benchmarks/accuracy.py --origins 4          # also the three origins before the last
    python benchmarks/accuracy.py --cost               # also each model's series/s (results: RESULTS.md)
    python benchmarks/accuracy.py --datasets jewelry --models Naive,SeasonalNaive,AutoTheta
    python benchmarks/accuracy.py --quality --origins 4 --datasets sample,jewelry,carparts,m5
    python benchmarks/accuracy.py --series-columns --origins 4   # M5's own columns as series regressors
    python benchmarks/accuracy.py --daily --origins 4 --datasets favorita,m5_daily   # daily retail with drivers
    python benchmarks/accuracy.py --daily --choose --datasets favorita   # the daily global model's variants

``--quality`` compares, on the same holdouts, today's default (the zoo, the models' own intervals) with each
addition alone (LightGBM without and with regressors, the per-series Combination, the backtest-calibrated
intervals) and with all of them: holdout sMAPE, coverage of the 80% and 95% intervals, CPU-seconds per
1,000 series. Each configuration's backtest is the union of its parts', run once and timed per part.

``--metrics`` chooses the champions on each selection metric (settings.selection.metric: smape, mase, rmse,
wape) from one backtest of the StatsForecast zoo per holdout, and scores each choice on the holdout in
sMAPE, WAPE and MASE. Run it on the earlier origins (``--first-origin 1``) so that the default is not tuned
on the last holdout.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from statsforecast import StatsForecast

from mlops_assets.forecasting.backtest import run_backtest
from mlops_assets.forecasting.metrics import SELECTION_METRICS, evaluate, seasonal_naive_scale
from mlops_assets.forecasting.selection import SELECTION_MODES, choose_champions, selection_summary
from mlops_assets.forecasting.zoo import STATSFORECAST_NAMES, build_fallback, build_models, default_models
from mlops_assets.registry.champion_model import ChampionForecaster
from mlops_assets.settings import Settings

# The full datasets live beside the checkout (../shared/data), or where SHARED_DATA says; the tests use
# small subsets in mlops_assets_tests/data instead.
DATA = Path(os.environ.get("SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def _dataset(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        raise SystemExit(
            f"{path} not found: this benchmark needs the full {name} (long CSV unique_id, ds, y). Put it in "
            "../shared/data beside the checkout or point SHARED_DATA at its folder. It is the `jewelry` or "
            "`carparts` data set of the R package expsmooth 2.3 (GPL >= 2), converted from its .rda file; "
            "mlops_assets_tests/data/README.md describes the conversion. `--datasets sample` runs without it."
        )
    return path


def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(_dataset(name), parse_dates=["ds"], dtype={"unique_id": str})


def _last_periods(df: pd.DataFrame, h: int, origin: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows and the h rows of every series that end ``origin * h`` rows before its last row."""
    df = df.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    position_from_end = df.groupby("unique_id").cumcount(ascending=False) - origin * h
    return df[position_from_end >= h], df[(position_from_end < h) & (position_from_end >= 0)]


def sample_weekly(settings: Settings, origin: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The product's own sample (orders -> gold), eligible series only.

    Which series are eligible is decided on the whole sample, also for earlier origins: the sample's
    excluded series are its seeded defects (too short, stale, discontinued), not a judgement on the future.
    """
    from mlops_assets.gold.aggregation import build_gold
    from mlops_assets.ingest.ingestion import read_landing_file
    from mlops_assets.sample_data import generate_sample

    with tempfile.TemporaryDirectory() as tmp:
        files = generate_sample(Path(tmp))
        tables = {t: read_landing_file(p, t, landing_root=Path(tmp)).rows for t, p in files.items()}
    gold, excluded = build_gold(tables, settings)
    gold = gold[~gold["unique_id"].isin(excluded["unique_id"])]
    train, test = _last_periods(gold[["unique_id", "ds", "y"]], settings.horizon, origin)
    return train, test, "mlops_assets.sample_data -> ingestion -> aggregation"


def jewelry(settings: Settings, origin: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    df = pd.read_csv(_dataset("jewelry_weekly.csv"), parse_dates=["ds"], dtype={"unique_id": str})
    train, test = _last_periods(df, settings.horizon, origin)
    return train, test, "jewelry_weekly.csv"


def carparts(settings: Settings, origin: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The product's path for series files: raw series -> gold, excluded series dropped.

    The holdout months are cut from the raw file before gold is built, so which series are excluded
    (stale, discontinued, missing values) is decided without them, as the product would have decided.
    """
    from mlops_assets.gold.aggregation import build_gold_from_series

    raw = pd.read_csv(_dataset("carparts_monthly.csv"), parse_dates=["ds"], dtype={"unique_id": str})
    holdout_start = raw["ds"].max() - pd.DateOffset(months=(origin + 1) * settings.horizon - 1)
    holdout_end = holdout_start + pd.DateOffset(months=settings.horizon)
    gold, excluded = build_gold_from_series(raw[raw["ds"] < holdout_start], settings)
    train = gold.loc[~gold["unique_id"].isin(excluded["unique_id"]), ["unique_id", "ds", "y"]]
    in_holdout = (raw["ds"] >= holdout_start) & (raw["ds"] < holdout_end)
    test = raw[in_holdout & raw["unique_id"].isin(train["unique_id"])]
    if test["y"].isna().any() or test.groupby("unique_id").size().ne(settings.horizon).any():
        raise ValueError("carparts: a kept series lacks a reported holdout value")
    reasons = ", ".join(f"{k} {v}" for k, v in excluded["reason_code"].value_counts().sort_index().items())
    source = f"carparts_monthly.csv -> build_gold_from_series, excluded: {reasons}"
    return train.reset_index(drop=True), test[["unique_id", "ds", "y"]].reset_index(drop=True), source


def m5(settings: Settings, origin: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    df = _read("m5_weekly_ca3_hobbies2.csv")
    train, test = _last_periods(df[["unique_id", "ds", "y"]], settings.horizon, origin)
    return train, test, "m5_weekly_ca3_hobbies2.csv"


DATASETS = {
    "sample": (sample_weekly, Settings()),
    "jewelry": (jewelry, Settings()),
    "carparts": (carparts, Settings(source="series", frequency="MS", horizon=6)),
    "m5": (m5, Settings(regressors={"last_known": ["sell_price"]})),
}


def dataset_regressors(name: str, settings: Settings, train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """The regressors a user of each dataset has, for its whole span (all are known ahead except the M5 price,
    which the backtest and the forecast replace by its last known value: settings.regressors.last_known).

    sample: planned promotions and US holidays from the product's own path; jewelry, carparts: US holidays;
    m5: the week's price, SNAP days and event days from the file.
    """
    from mlops_assets.gold.regressors import build_regressors, holiday_days

    rows = pd.concat([train, test])[["unique_id", "ds"]]
    if name == "m5":
        df = _read("m5_weekly_ca3_hobbies2.csv")
        x = rows.merge(df[["unique_id", "ds", "sell_price", "snap_days", "event_days"]], on=["unique_id", "ds"])
        return x.assign(sell_price=x.groupby("unique_id")["sell_price"].ffill().bfill())
    if name == "sample":
        from mlops_assets.ingest.ingestion import read_landing_file
        from mlops_assets.sample_data import generate_sample

        with tempfile.TemporaryDirectory() as tmp:
            files = generate_sample(Path(tmp))
            promotions = read_landing_file(files["promotions"], "promotions", landing_root=Path(tmp)).rows
        x = build_regressors(rows.assign(product_id=rows["unique_id"]), promotions, settings.frequency, 0,
                             settings.grain, settings.regressors.country)
        return x.drop(columns="is_future")
    return rows.assign(holiday_days=holiday_days(rows["ds"], settings.frequency, settings.regressors.country))


def _cpu() -> float:
    """CPU-seconds of this process and its finished children (StatsForecast's worker pools)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(fn, *args, **kwargs):
    cpu, wall = _cpu(), time.perf_counter()
    out = fn(*args, **kwargs)
    return out, _cpu() - cpu, time.perf_counter() - wall


QUALITY_CONFIGS = {
    # name: (extra candidates beside the zoo, LightGBM with regressors, intervals)
    "today": ((), False, "model"),
    "+intervals": ((), False, "backtest"),
    "+LightGBM": (("LightGBM",), False, "backtest"),
    "+LightGBM+regressors": (("LightGBM",), True, "backtest"),
    "+Combination": (("Combination",), False, "backtest"),
    "new default": (("LightGBM", "Combination"), True, "backtest"),
}


def long_enough(train: pd.DataFrame, test: pd.DataFrame, settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test of the series long enough for the product (gold excludes the others)."""
    sizes = train.groupby("unique_id").size()
    keep = sizes.index[sizes >= settings.min_series_length]
    return train[train["unique_id"].isin(keep)], test[test["unique_id"].isin(keep)]


def coverage_of(test: pd.DataFrame, forecasts: pd.DataFrame, level: int) -> float:
    merged = test.merge(forecasts, on=["unique_id", "ds"], how="inner")
    inside = (merged["y"] >= merged[f"lo_{level}"] - 1e-9) & (merged["y"] <= merged[f"hi_{level}"] + 1e-9)
    return float(100 * inside.mean())


def quality(name: str, origin: int) -> list[dict]:
    """Every QUALITY_CONFIGS configuration on one dataset and holdout origin."""
    from mlops_assets.forecasting.combinations import combine_backtest
    from mlops_assets.forecasting.global_model import backtest_global
    from mlops_assets.registry.champion_model import forecaster_for

    load, settings = DATASETS[name]
    train, test, _ = load(settings, origin)
    train, test = long_enough(train, test, settings)
    n_series = train["unique_id"].nunique()
    x = dataset_regressors(name, settings, train, test)
    # Today's default zoo: the StatsForecast models (LightGBM and Combination are the additions measured).
    zoo = [n for n in default_models(settings) if n in STATSFORECAST_NAMES]
    zoo_bt, zoo_cpu, _ = _timed(run_backtest, train, settings, models=zoo)
    gbm = {}
    for with_x in (False, True):
        gbm[with_x] = _timed(backtest_global, train, x if with_x else None, settings.frequency, settings.season,
                             settings.horizon, settings.backtest.windows, settings.step,
                             settings.regressors.last_known, settings.seed)
    rows = []
    for config, (extra, with_x, intervals) in QUALITY_CONFIGS.items():
        parts, cpu = [zoo_bt], zoo_cpu
        if "LightGBM" in extra:
            parts.append(gbm[with_x][0])
            cpu += gbm[with_x][1]
        backtest = pd.concat(parts, ignore_index=True)
        if "Combination" in extra:
            combined, c, _ = _timed(combine_backtest, backtest, settings.combination_size)
            backtest, cpu = pd.concat([backtest, combined], ignore_index=True), cpu + c
        (champions, decision), c, _ = _timed(_select, backtest, train, settings)
        model_settings = settings.model_copy(update={"intervals": settings.intervals.model_copy(
            update={"method": intervals})})
        forecaster = forecaster_for(model_settings)
        fitted, c2, _ = _timed(forecaster.fit, train, champions[["unique_id", "model"]], backtest,
                               x if with_x else None)
        forecasts = fitted.predict()
        rows.append({
            "dataset": name, "origin": origin, "config": config, "series": n_series,
            "smape": holdout_smape(test, forecasts, "y_hat"),
            "seasonal_naive": holdout_smape(test, _seasonal_naive(train, settings), "SeasonalNaive"),
            "cov80": coverage_of(test, forecasts, 80), "cov95": coverage_of(test, forecasts, 95),
            "cpu_per_1000": 1000 * (cpu + c + c2) / n_series, "mode": decision["mode"],
            "mix": champions["model"].value_counts(normalize=True).round(2).head(3).to_dict(),
            "load": os.getloadavg()[0],
        })
    return rows


M5_COLUMNS = {"sell_price": "last_known", "snap_days": "planned", "event_days": "planned"}


def series_columns(origin: int) -> list[dict]:
    """M5 as a user's series file with its own drivers, through the product's path (gold, gold.regressors),
    without and with ``regressors.series_columns``: the holdout weeks are the file's planned rows (empty y,
    the price, SNAP and event days given). LightGBM alone and the default zoo with LightGBM (auto selection,
    backtest intervals), scored on the holdout."""
    from mlops_assets.forecasting.global_model import backtest_global, forecast_global
    from mlops_assets.gold.aggregation import build_gold_from_series
    from mlops_assets.gold.regressors import build_regressors
    from mlops_assets.registry.champion_model import forecaster_for

    raw = _read("m5_weekly_ca3_hobbies2.csv").drop(columns="event_names")
    settings_base = Settings(source="series")
    kept, test = _last_periods(raw, settings_base.horizon, origin)
    planned = test.assign(y=np.nan)
    file = pd.concat([kept, planned], ignore_index=True).sort_values(["unique_id", "ds"], ignore_index=True)
    rows = []
    for label, declared in (("holidays only", {}), ("+ series columns", M5_COLUMNS)):
        settings = Settings(source="series", regressors={"series_columns": declared})
        gold, excluded = build_gold_from_series(file, settings)
        gold = gold[~gold["unique_id"].isin(excluded["unique_id"])]
        train = gold[["unique_id", "ds", "y"]].reset_index(drop=True)
        x = build_regressors(gold, None, settings.frequency, settings.horizon, settings.grain,
                             settings.regressors.country, file, declared).drop(columns="is_future")
        x = x[["unique_id", "ds", *settings.regressors.use]]
        holdout = test[test["unique_id"].isin(train["unique_id"])][["unique_id", "ds", "y"]]
        unknown = settings.regressors.unknown_future
        cpu = _cpu()
        gbm = backtest_global(train, x, settings.frequency, settings.season, settings.horizon,
                              settings.backtest.windows, settings.step, unknown, settings.seed)
        alone = forecast_global(train, x, settings.frequency, settings.season, settings.horizon,
                                last_known=unknown, seed=settings.seed)
        gbm_cpu = _cpu() - cpu
        zoo = [n for n in default_models(settings) if n in STATSFORECAST_NAMES]
        backtest = pd.concat([run_backtest(train, settings, models=zoo), gbm], ignore_index=True)
        champions, decision = _select(backtest, train, settings)
        forecasts = forecaster_for(settings).fit(train, champions[["unique_id", "model"]], backtest, x).predict()
        rows.append({
            "origin": origin, "config": label, "series": train["unique_id"].nunique(),
            "lightgbm": holdout_smape(holdout, alone, "y_hat"), "default": holdout_smape(holdout, forecasts, "y_hat"),
            "lightgbm_share": float((champions["model"] == "LightGBM").mean()), "mode": decision["mode"],
            "lightgbm_cpu": gbm_cpu, "load": os.getloadavg()[0],
        })
    return rows


def print_series_columns(rows: list[dict]) -> None:
    print("\nM5 as a series file: holdout sMAPE (0-200) of LightGBM alone and of the default zoo + LightGBM")
    print(f"{'origin':>6}  {'regressors':<18}{'series':>7}{'LightGBM':>10}{'default':>9}{'LGBM share':>11}"
          f"{'LGBM CPU-s':>11}{'load':>6}  selection")
    for r in rows:
        print(f"{r['origin']:>6}  {r['config']:<18}{r['series']:>7}{r['lightgbm']:>10.2f}{r['default']:>9.2f}"
              f"{r['lightgbm_share']:>11.2f}{r['lightgbm_cpu']:>11.1f}{r['load']:>6.1f}  {r['mode']}")


def _select(backtest: pd.DataFrame, train: pd.DataFrame, settings: Settings):
    evaluation = evaluate(backtest, train, settings.season)
    return choose_champions(evaluation, backtest, train, settings.season, mode=settings.selection.mode,
                            tolerance=settings.selection.global_tolerance)


def _seasonal_naive(train: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    sf = StatsForecast(models=build_models(["SeasonalNaive"], settings.season, settings.horizon),
                       freq=settings.frequency, n_jobs=1,
                       fallback_model=build_fallback(settings.season, settings.horizon))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sf.forecast(df=train, h=settings.horizon)


def print_quality(rows: list[dict]) -> None:
    print("\nholdout sMAPE (0-200), interval coverage (%), CPU-s per 1,000 series (backtest + selection + fit)")
    print(f"{'dataset':<9}{'origin':>6}  {'config':<22}{'sMAPE':>7}{'SN':>7}{'cov80':>7}{'cov95':>7}{'CPU-s/1k':>10}"
          f"{'load':>6}  selection, champion mix")
    for r in rows:
        print(f"{r['dataset']:<9}{r['origin']:>6}  {r['config']:<22}{r['smape']:>7.2f}{r['seasonal_naive']:>7.2f}"
              f"{r['cov80']:>7.1f}{r['cov95']:>7.1f}{r['cpu_per_1000']:>10.1f}{r['load']:>6.1f}  "
              f"{r['mode']}, {r['mix']}")
    frame = pd.DataFrame(rows)
    summary = frame.groupby("config", sort=False).agg(
        smape=("smape", "mean"), cov80=("cov80", "mean"), cov95=("cov95", "mean"), cpu=("cpu_per_1000", "mean"))
    today = frame[frame["config"] == "today"].set_index(["dataset", "origin"])["smape"]
    for config in summary.index:
        mine = frame[frame["config"] == config].set_index(["dataset", "origin"])
        summary.loc[config, "beats_today"] = f"{int((mine['smape'] < today - 1e-9).sum())}/{len(mine)}"
        worse = int((mine["smape"] > mine["seasonal_naive"] + 1e-9).sum())
        summary.loc[config, "worse_than_SN"] = f"{worse}/{len(mine)}"
    summary["cpu_ratio"] = summary["cpu"] / summary.loc["today", "cpu"]
    print("\nover all holdouts")
    print(summary.round(2).to_string())


def holdout_scores(train: pd.DataFrame, actual: pd.DataFrame, forecasts: pd.DataFrame, season: int) -> dict:
    """Mean over series of the holdout's sMAPE (0-200), WAPE (%) and MASE (scaled on the training data)."""
    merged = actual.merge(forecasts[["unique_id", "ds", "y_hat"]], on=["unique_id", "ds"], how="left")
    error = (merged["y"] - merged["y_hat"].fillna(0.0)).abs()
    by = merged["unique_id"].to_numpy()
    per_series = pd.DataFrame({"abs_error": error.groupby(by).sum(), "abs_y": merged["y"].abs().groupby(by).sum(),
                               "mae": error.groupby(by).mean()})
    ends = train.groupby("unique_id", as_index=False)["ds"].max().rename(columns={"ds": "cutoff"})
    scale = seasonal_naive_scale(train, ends, season).set_axis(ends["unique_id"].astype(str))
    with np.errstate(divide="ignore", invalid="ignore"):
        wape = (100 * per_series["abs_error"] / per_series["abs_y"]).replace(np.inf, np.nan)
    return {"smape": holdout_smape(actual, forecasts, "y_hat"), "wape": float(wape.mean()),
            "mase": float((per_series["mae"] / scale.reindex(per_series.index)).mean())}


def metric_comparison(name: str, origin: int) -> list[dict]:
    """The champions chosen on each selection metric from one backtest, scored on the holdout."""
    load, settings = DATASETS[name]
    train, test, _ = load(settings, origin)
    train, test = long_enough(train, test, settings)
    names = [n for n in default_models(settings) if n in STATSFORECAST_NAMES]
    backtest = run_backtest(train, settings, models=names)
    evaluation = evaluate(backtest, train, settings.season)
    rows = []
    for metric in SELECTION_METRICS:
        (champions, decision), cpu, _ = _timed(
            choose_champions, evaluation, backtest, train, settings.season, mode=settings.selection.mode,
            tolerance=settings.selection.global_tolerance, margin=settings.selection.margin,
            guard_windows=settings.selection.guard_windows, metric=metric)
        forecasts = ChampionForecaster(settings.frequency, settings.season, settings.horizon).fit(
            train, champions[["unique_id", "model"]]).predict()
        shares = champions["model"].value_counts(normalize=True).round(2).head(3).to_dict()
        rows.append({"dataset": name, "origin": origin, "metric": metric, "series": train["unique_id"].nunique(),
                     **holdout_scores(train, test, forecasts, settings.season),
                     "selection": decision["mode"] + (f" ({decision['champion_for_all']})"
                                                      if "champion_for_all" in decision else ""),
                     "mix": shares, "selection_cpu_s": cpu, "load": os.getloadavg()[0]})
    return rows


def print_metrics(rows: list[dict]) -> None:
    frame = pd.DataFrame(rows)
    print("\nholdout scores of the champions chosen on each selection metric (mean over series)")
    print(frame[["dataset", "origin", "metric", "smape", "wape", "mase", "selection", "mix", "selection_cpu_s",
                 "load"]].round(3).to_string(index=False))
    wins = {}
    for score in ("smape", "wape", "mase"):
        # Ties (the same champions) count for every metric that reached the best score.
        best = frame[frame[score] <= frame.groupby(["dataset", "origin"])[score].transform("min") + 1e-9]
        wins[score] = best["metric"].value_counts().reindex(SELECTION_METRICS, fill_value=0)
    summary = frame.groupby("metric", sort=False)[["smape", "wape", "mase"]].mean()
    for score, counts in wins.items():
        summary[f"best on {score}"] = counts
    print("\nover all holdouts (mean; and at how many holdouts each metric's choice scored best, ties counted "
          "for each)")
    print(summary.round(3).to_string())


def holdout_smape(actual: pd.DataFrame, forecasts: pd.DataFrame, column: str) -> float:
    """Mean over series of the per-series M4 sMAPE (0-200) on the holdout; a missing forecast counts as 0."""
    merged = actual.merge(forecasts[["unique_id", "ds", column]], on=["unique_id", "ds"], how="left")
    y = merged["y"].to_numpy(dtype=float)
    f = np.clip(np.nan_to_num(merged[column].to_numpy(dtype=float), nan=0.0), 0, None)
    den = np.abs(y) + np.abs(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(den == 0, 0.0, 200 * np.abs(y - f) / den)
    return float(pd.Series(terms).groupby(merged["unique_id"].to_numpy()).mean().mean())


def model_cost(train: pd.DataFrame, settings: Settings, names: list[str], n_series: int = 200) -> dict:
    """Series per second of one fit and forecast per model, one core, on the first n_series series."""
    uids = sorted(train["unique_id"].unique())[:n_series]
    sub = train[train["unique_id"].isin(uids)]
    rates = {}
    for name in names:
        sf = StatsForecast(models=build_models([name], settings.season, settings.horizon),
                           freq=settings.frequency, n_jobs=1)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sf.forecast(df=sub, h=settings.horizon)
        rates[name] = len(uids) / (time.perf_counter() - start)
    return rates


def run(name: str, models: list[str] | None, cost: bool = False, origin: int = 0, mode: str = "auto") -> dict:
    load, settings = DATASETS[name]
    train, test, source = load(settings, origin)
    h = settings.horizon
    n_series = train["unique_id"].nunique()
    train, test = long_enough(train, test, settings)
    # This protocol scores StatsForecast models one by one; --quality measures LightGBM and Combination.
    names = models or [n for n in default_models(settings) if n in STATSFORECAST_NAMES]

    t0 = time.perf_counter()
    backtest = run_backtest(train, settings, models=names)
    evaluation = evaluate(backtest, train, settings.season)
    champions, decision = choose_champions(
        evaluation, backtest, train, settings.season, mode=mode, tolerance=settings.selection.global_tolerance
    )
    summary = selection_summary(evaluation, champions)
    t1 = time.perf_counter()
    forecaster = ChampionForecaster(settings.frequency, settings.season, h, levels=(80, 95))
    champion_fcst = forecaster.fit(train, champions).predict()
    t2 = time.perf_counter()
    sf = StatsForecast(models=build_models(names, settings.season, h), freq=settings.frequency, n_jobs=-1,
                       fallback_model=build_fallback(settings.season, h))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Historical data .* shorter than season_length")
        singles = sf.forecast(df=train, h=h)
    t3 = time.perf_counter()

    scores = {m: holdout_smape(test, singles, m) for m in names}
    best_single = min(scores, key=scores.get)
    champion = holdout_smape(test, champion_fcst, "y_hat")
    chosen = summary["best_single_model"]
    return {
        "dataset": name, "origin": origin, "holdout": (test["ds"].min().date(), test["ds"].max().date()),
        "mode": decision["mode"] + (f" ({decision['champion_for_all']})" if "champion_for_all" in decision else ""),
        "chosen_single": chosen, "chosen_single_smape": scores.get(chosen, float("nan")),
        "source": source, "series": int(train["unique_id"].nunique()),
        "dropped_short": int(n_series - train["unique_id"].nunique()), "champion": champion,
        "seasonal_naive": scores.get("SeasonalNaive", float("nan")), "best_single": best_single,
        "best_single_smape": scores[best_single], "singles": scores, "summary": summary,
        "cost": model_cost(train, settings, names) if cost else {},
        "seconds": {
            "backtest+select": t1 - t0, "champion fit+predict": t2 - t1, "all-model forecast": t3 - t2,
        },
    }


def print_details(r: dict) -> None:
    print(f"\n== {r['dataset']} ({r['source']}): {r['series']} series, {r['dropped_short']} too short, "
          f"holdout {r['holdout'][0]} .. {r['holdout'][1]}")
    print(f"timing (s): {', '.join(f'{k} {v:.1f}' for k, v in r['seconds'].items())}")
    shares = ", ".join(f"{m} {s:.0%}" for m, s in r["summary"]["win_share"].items())
    print(f"selection: {r['mode']}; backtest win share: {shares}")
    backtest = r["summary"]
    print(f"backtest: champions {backtest['champion_smape']:.2f}, best single {backtest['best_single_model']} "
          f"{backtest['best_single_smape']:.2f}, SeasonalNaive {backtest['seasonal_naive_smape']:.2f}")
    print(f"{'model':<22}{'holdout sMAPE':>14}{'series/s (1 core)':>19}")
    print(f"{'CHAMPION selection':<22}{r['champion']:>14.2f}")
    for m, s in sorted(r["singles"].items(), key=lambda kv: kv[1]):
        rate = f"{r['cost'][m]:>19,.0f}" if m in r["cost"] else ""
        print(f"{m:<22}{s:>14.2f}{rate}")


def verdict(r: dict) -> dict:
    """The requirement at one origin: beat SeasonalNaive, and within 2% of the best single model."""
    return {
        "beats_sn": r["champion"] < r["seasonal_naive"],
        "within_2pct": r["champion"] <= r["best_single_smape"] * 1.02,
        "ratio": r["champion"] / r["best_single_smape"],
        "ratio_chosen": r["champion"] / r["chosen_single_smape"],
    }


def print_origins(results: list[dict]) -> None:
    print("\nper origin (0 = the last horizon); ratios are champion / single model, below 1 is better")
    print(f"{'dataset':<10}{'origin':>7}  {'holdout':<24}{'champion':>9}{'SN':>8}  {'best in hindsight':<25}"
          f"{'ratio':>6}  {'picked by backtest':<25}{'ratio':>6}  beats SN  selection")
    for r in results:
        v = verdict(r)
        hindsight = f"{r['best_single']} {r['best_single_smape']:.2f}"
        chosen = f"{r['chosen_single']} {r['chosen_single_smape']:.2f}"
        print(f"{r['dataset']:<10}{r['origin']:>7}  {str(r['holdout'][0]) + ' .. ' + str(r['holdout'][1]):<24}"
              f"{r['champion']:>9.2f}{r['seasonal_naive']:>8.2f}  {hindsight:<25}{v['ratio']:>6.3f}  "
              f"{chosen:<25}{v['ratio_chosen']:>6.3f}  {'yes' if v['beats_sn'] else 'NO ':<8}  {r['mode']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="sample,jewelry,carparts")
    parser.add_argument("--models", default=None, help="comma-separated zoo; default: the frequency's zoo")
    parser.add_argument("--cost", action="store_true", help="also time each model alone (series/s, 1 core)")
    parser.add_argument("--origins", type=int, default=1, help="holdout origins, the last and those before it")
    parser.add_argument("--selection", default="auto", choices=SELECTION_MODES, help="selection.mode to use")
    parser.add_argument("--quality", action="store_true", help="today's default vs each addition (see above)")
    parser.add_argument("--metrics", action="store_true", help="the champions chosen on each selection metric")
    parser.add_argument("--first-origin", type=int, default=0, help="skip the origins before this one")
    parser.add_argument("--series-columns", action="store_true",
                        help="M5 as a series file, without and with its price, SNAP and events declared")
    parser.add_argument("--daily", action="store_true", help="daily retail with drivers (benchmarks/daily.py)")
    parser.add_argument("--choose", action="store_true", help="with --daily: global-model variants, backtest only")
    args = parser.parse_args()
    if args.daily:
        from daily import run_daily

        run_daily(args.datasets.split(","), args.origins, args.choose)
        return
    if args.metrics:
        rows = []
        for name in args.datasets.split(","):
            for origin in range(args.first_origin, args.origins):
                rows.extend(metric_comparison(name, origin))
                print_metrics(rows[-len(SELECTION_METRICS):])
        print_metrics(rows)
        return
    if args.series_columns:
        rows = []
        for origin in range(args.origins):
            rows.extend(series_columns(origin))
            print_series_columns(rows[-2:])
        print_series_columns(rows)
        return
    if args.quality:
        rows = []
        for name in args.datasets.split(","):
            for origin in range(args.origins):
                rows.extend(quality(name, origin))
                print_quality(rows[-len(QUALITY_CONFIGS):])
        print_quality(rows)
        return
    models = args.models.split(",") if args.models else None
    results = []
    for name in args.datasets.split(","):
        for origin in range(args.origins):
            r = run(name, models, cost=args.cost and origin == 0, origin=origin, mode=args.selection)
            results.append(r)
            if origin == 0:
                print_details(r)
    print_origins(results)
    last = [(r["dataset"], verdict(r)) for r in results if r["origin"] == 0]
    print("\nverdict at the last origin (the requirement): " + "; ".join(
        f"{n}: beats SN={v['beats_sn']}, within 2% of best in hindsight={v['within_2pct']} ({v['ratio']:.3f})"
        for n, v in last))


if __name__ == "__main__":
    main()
