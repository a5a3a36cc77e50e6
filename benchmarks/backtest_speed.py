"""What does the backtest asset add on top of StatsForecast? run_backtest vs the bare cross_validation.

Synthetic weekly series (3 years: yearly season, trend, noise; every fifth series intermittent), seeded.
For each size, run_backtest (validation, the cross-validation, the long reshape) and the bare
``StatsForecast.cross_validation`` on the same data and models are timed; target ratio < 1.15.

    python benchmarks/backtest_speed.py --sizes 1000,5000
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import warnings

import numpy as np
import pandas as pd
from statsforecast import StatsForecast

from mlops_assets.forecasting.backtest import run_backtest, to_long, validate_history
from mlops_assets.forecasting.zoo import STATSFORECAST_NAMES, build_fallback, build_models, default_models
from mlops_assets.settings import Settings


def synthetic_weekly(n_series: int, n_weeks: int = 156, seed: int = 42) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n_weeks)
    level = rng.lognormal(3, 1, (n_series, 1))
    phase = rng.integers(0, 52, (n_series, 1))
    season = 1 + rng.uniform(0.1, 0.5, (n_series, 1)) * np.sin(2 * np.pi * (t + phase) / 52)
    trend = 1 + rng.normal(0, 0.002, (n_series, 1)) * t
    y = level * season * trend * rng.lognormal(0, 0.2, (n_series, n_weeks))
    intermittent = np.arange(n_series) % 5 == 0
    y[intermittent] *= rng.random((intermittent.sum(), n_weeks)) < 0.3
    ds = pd.date_range("2022-01-03", periods=n_weeks, freq="W-MON")
    return pd.DataFrame({
        "unique_id": np.repeat([f"S{i:05d}" for i in range(n_series)], n_weeks),
        "ds": np.tile(ds, n_series),
        "y": np.round(np.maximum(y, 0)).ravel(),
    })


def peak_rss_mb() -> tuple[float, float]:
    """Peak resident memory (MB) of this process and of its largest finished worker so far (Linux KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the pool's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(call):
    """The call's result, wall seconds and CPU seconds."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = call()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--models", default=None, help="comma-separated; default: the weekly zoo's StatsForecast "
                        "models (the bare baseline is one StatsForecast call)")
    args = parser.parse_args()
    settings = Settings()
    names = args.models.split(",") if args.models else [
        n for n in default_models(settings) if n in STATSFORECAST_NAMES
    ]
    print(f"models: {names}; horizon {settings.horizon}, windows {settings.backtest.windows}, "
          f"step {settings.step}")
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        df = synthetic_weekly(n)
        sf = StatsForecast(models=build_models(names, settings.season, settings.horizon),
                           freq=settings.frequency, n_jobs=-1,
                           fallback_model=build_fallback(settings.season, settings.horizon))

        def bare(df=df, sf=sf) -> pd.DataFrame:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Historical data .* shorter than season_length")
                return sf.cross_validation(df=df, h=settings.horizon, n_windows=settings.backtest.windows,
                                           step_size=settings.step)

        # Bare first, then the asset: any warm-up (imports in fresh workers) favours the asset.
        cv, bare_wall, bare_cpu = timed(bare)
        long, asset_wall, asset_cpu = timed(lambda df=df: run_backtest(df, settings, models=names))
        # The wrapper's own work alone: on a shared machine the wall times above drift with the other
        # processes' load; this one, and the CPU seconds, barely do.
        _, overhead, _ = timed(lambda cv=cv, df=df, m=settings.min_series_length: (
            to_long(cv, names), validate_history(df, m)))
        own, children = peak_rss_mb()
        rows.append((n, asset_wall, bare_wall, asset_wall / bare_wall, asset_cpu / bare_cpu, overhead,
                     n / asset_wall, len(long), own, children))
        print(f"done {n}: asset {asset_wall:.1f}s ({asset_cpu:.1f} CPU-s), bare {bare_wall:.1f}s "
              f"({bare_cpu:.1f} CPU-s), overhead {overhead:.2f}s, load {os.getloadavg()[0]:.1f}", flush=True)

    print(f"\n{'series':>7} {'asset s':>9} {'bare s':>9} {'ratio':>6} {'CPU ratio':>9} {'overhead s':>11} "
          f"{'series/s':>9} {'rows':>10} "
          f"{'peak MB main':>13} {'peak MB worker':>15}")
    for n, asset, bare, ratio, cpu_ratio, overhead, rate, n_rows, own, children in rows:
        print(f"{n:>7} {asset:>9.1f} {bare:>9.1f} {ratio:>6.3f} {cpu_ratio:>9.3f} {overhead:>11.2f} {rate:>9.1f} "
              f"{n_rows:>10,} {own:>13.0f} {children:>15.0f}")
    print("target ratio < 1.15 (wall):", all(r[3] < 1.15 for r in rows), "(CPU):", all(r[4] < 1.15 for r in rows))


if __name__ == "__main__":
    main()
