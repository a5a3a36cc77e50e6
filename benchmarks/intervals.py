"""Do the backtest-calibrated intervals hold their nominal coverage? On the last backtest window and on holdouts.

For each dataset and holdout origin (benchmarks/accuracy.py's loaders and protocol): the default zoo is
backtested on the training rows, the champions chosen, fitted and forecast on the holdout (the product's
path: run_backtest, choose_champions, ChampionForecaster). The point forecasts and backtest rows are cached,
so each calibration method (forecasting.intervals.CALIBRATIONS) is then scored cheaply:

- ``window``: calibrated on each series' earlier backtest windows, scored on its last one, with the champions
  chosen on every window (the product's check before it chose them again).
- ``honest``: the same, with each series' champion chosen without the last window (intervals.chosen_without_last:
  the lowest mean sMAPE on the earlier ones), now the product's check: the last window is then as unseen as
  a holdout, selection included. This is what a method is chosen on; the holdout never is.
- ``holdout``: calibrated on every backtest window, scored on the held-out horizon.

    python benchmarks/intervals.py --datasets sample,jewelry,m5,carparts --origins 4
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import DATASETS, _select, dataset_regressors, long_enough  # noqa: E402

from mlops_assets.forecasting.backtest import run_backtest  # noqa: E402
from mlops_assets.forecasting.intervals import (  # noqa: E402
    CALIBRATIONS,
    calibrate,
    last_window_coverage,
)
from mlops_assets.forecasting.zoo import default_models  # noqa: E402
from mlops_assets.registry.champion_model import forecaster_for  # noqa: E402

LEVELS = (80, 95)


def cached_run(name: str, origin: int, cache: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Series]:
    """Backtest rows, champions, holdout rows (unique_id, ds, step, y, y_hat) and each series' mean |actual|."""
    stem = cache / f"{name}-{origin}"
    files = [stem.with_suffix(f".{k}.parquet") for k in ("backtest", "champions", "holdout", "level")]
    if not all(f.exists() for f in files):
        load, settings = DATASETS[name]
        train, test, _ = load(settings, origin)
        train, test = long_enough(train, test, settings)
        x = dataset_regressors(name, settings, train, test)
        backtest = run_backtest(train, settings, default_models(settings), n_jobs=1, regressors=x)
        champions, _ = _select(backtest, train, settings)
        forecaster = forecaster_for(settings, n_jobs=1).fit(train, champions[["unique_id", "model"]], backtest, x)
        predicted = forecaster.predict()[["unique_id", "ds", "y_hat"]]
        predicted["step"] = predicted.groupby("unique_id").cumcount() + 1
        holdout = test[["unique_id", "ds", "y"]].merge(predicted, on=["unique_id", "ds"], how="inner")
        level = train.assign(a=train["y"].abs()).groupby("unique_id")["a"].mean().rename("level")
        negative = train.groupby("unique_id")["y"].min() < 0
        holdout["clip"] = ~holdout["unique_id"].map(negative).fillna(False).to_numpy(dtype=bool)
        cache.mkdir(parents=True, exist_ok=True)
        for frame, path in zip((backtest, champions[["unique_id", "model"]], holdout, level.to_frame()), files,
                               strict=True):
            frame.to_parquet(path)
    backtest, champions, holdout, level = (pd.read_parquet(f) for f in files)
    return backtest, champions, holdout, level["level"]


def holdout_coverage(calibration, holdout: pd.DataFrame) -> dict[int, float]:
    scale = calibration.scale.reindex(holdout["unique_id"]).to_numpy(dtype=float)
    y, y_hat, clip = (holdout[c].to_numpy() for c in ("y", "y_hat", "clip"))
    out = {}
    for level in LEVELS:
        half = scale * calibration.quantiles[level].reindex(holdout["step"]).to_numpy(dtype=float)
        lo, hi = y_hat - half, y_hat + half
        lo, hi = np.where(clip, np.clip(lo, 0, None), lo), np.where(clip, np.clip(hi, 0, None), hi)
        out[level] = float(100 * np.mean((y >= lo - 1e-9) & (y <= hi + 1e-9)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="sample,jewelry,m5,carparts")
    parser.add_argument("--origins", type=int, default=4)
    parser.add_argument("--cache", default=os.environ.get("INTERVALS_CACHE", "/tmp/intervals-benchmark"))
    args = parser.parse_args()
    print(f"{'dataset':<9}{'origin':>6}  {'method':<9}{'window80':>9}{'window95':>9}{'honest80':>9}"
          f"{'honest95':>9}{'hold80':>8}{'hold95':>8}{'load':>6}")
    for name in args.datasets.split(","):
        for origin in range(args.origins):
            backtest, champions, holdout, level = cached_run(name, origin, Path(args.cache))
            _, settings = DATASETS[name]
            clip = bool(holdout["clip"].all())
            for method in CALIBRATIONS:
                window = last_window_coverage(backtest, champions, level, LEVELS, settings.horizon, clip, method)
                honest = last_window_coverage(backtest, champions, level, LEVELS, settings.horizon, clip, method,
                                              reselect=True)
                full = calibrate(backtest, champions, level, LEVELS, settings.horizon, method)
                held = holdout_coverage(full, holdout)
                print(f"{name:<9}{origin:>6}  {method:<9}{window[80]:>9.1f}{window[95]:>9.1f}{honest[80]:>9.1f}"
                      f"{honest[95]:>9.1f}{held[80]:>8.1f}{held[95]:>8.1f}{os.getloadavg()[0]:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
