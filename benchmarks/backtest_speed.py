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

from mlops_assets.backtest import run_backtest, to_long, validate_history
from mlops_assets.settings import Settings
from mlops_assets.zoo import build_fallback, build_models, default_models


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--models", default=None, help="comma-separated; default: the weekly zoo")
    args = parser.parse_args()
    settings = Settings()
    names = args.models.split(",") if args.models else default_models(settings)
    print(f"models: {names}; horizon {settings.horizon}, windows {settings.backtest.windows}, "
          f"step {settings.step}")
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        df = synthetic_weekly(n)
        start = time.perf_counter()
        long = run_backtest(df, settings, models=names)
        asset = time.perf_counter() - start

        sf = StatsForecast(models=build_models(names, settings.season, settings.horizon),
                           freq=settings.frequency, n_jobs=-1,
                           fallback_model=build_fallback(settings.season, settings.horizon))
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Historical data .* shorter than season_length")
            cv = sf.cross_validation(df=df, h=settings.horizon, n_windows=settings.backtest.windows,
                                     step_size=settings.step)
        bare = time.perf_counter() - start
        # The wrapper's own work timed alone: on a shared machine the two timings above drift with the
        # other processes' load, this one barely does.
        start = time.perf_counter()
        to_long(cv, names), validate_history(df, settings.min_series_length)
        overhead = time.perf_counter() - start
        own, children = peak_rss_mb()
        rows.append((n, asset, bare, asset / bare, overhead, n / asset, len(long), own, children))
        print(f"done {n}: asset {asset:.1f}s, bare {bare:.1f}s, overhead {overhead:.2f}s, "
              f"load {os.getloadavg()[0]:.1f}", flush=True)

    print(f"\n{'series':>7} {'asset s':>9} {'bare s':>9} {'ratio':>6} {'overhead s':>11} {'series/s':>9} {'rows':>10} "
          f"{'peak MB main':>13} {'peak MB worker':>15}")
    for n, asset, bare, ratio, overhead, rate, n_rows, own, children in rows:
        print(f"{n:>7} {asset:>9.1f} {bare:>9.1f} {ratio:>6.3f} {overhead:>11.2f} {rate:>9.1f} "
              f"{n_rows:>10,} {own:>13.0f} {children:>15.0f}")
    print("target ratio < 1.15:", all(r[3] < 1.15 for r in rows))


if __name__ == "__main__":
    main()
