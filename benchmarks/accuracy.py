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
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from statsforecast import StatsForecast

from mlops_assets.forecasting.backtest import run_backtest
from mlops_assets.forecasting.metrics import evaluate
from mlops_assets.forecasting.selection import SELECTION_MODES, choose_champions, selection_summary
from mlops_assets.forecasting.zoo import build_fallback, build_models, default_models
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


DATASETS = {
    "sample": (sample_weekly, Settings()),
    "jewelry": (jewelry, Settings()),
    "carparts": (carparts, Settings(source="series", frequency="MS", horizon=6)),
}


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
    sizes = train.groupby("unique_id").size()
    keep = sizes.index[sizes >= settings.min_series_length]
    train, test = train[train["unique_id"].isin(keep)], test[test["unique_id"].isin(keep)]
    names = models or default_models(settings)

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
        "dropped_short": int(n_series - len(keep)), "champion": champion,
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
    args = parser.parse_args()
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
