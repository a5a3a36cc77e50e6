"""How daily champions are chosen, decided on backtest windows before the earliest holdout (never on a holdout).

``SHARED_DATA=../shared/data python benchmarks/daily_selection.py [favorita,m5_daily]``

The default daily zoo is backtested once on the data before the earliest holdout of benchmarks/daily.py, with
six 28-day windows. Each of the last three windows in turn plays the holdout: every rule chooses champions
on the three windows before it (as the product does with its three), and the choice is scored on it (WAPE
over all open days, sMAPE the mean over series). The rules differ in what the guard and the one model for all
compare over series: the mean of a per-series score (every series weighs the same), or the pooled error of
all series (a series weighs what it sells: the WAPE a retailer reads).
"""

from __future__ import annotations

import os
import sys
import time

import pandas as pd
from daily import DATASETS, SETTINGS, closed_rows, holdout_split, regressors_of, scores, timed

from mlops_assets.forecasting.backtest import run_backtest
from mlops_assets.forecasting.intervals import CALIBRATIONS, calibrate
from mlops_assets.forecasting.metrics import evaluate
from mlops_assets.forecasting.selection import choose_champions
from mlops_assets.forecasting.zoo import declared_drivers, default_models, guard_metric, guard_windows
from mlops_assets.settings import load_settings

WINDOWS, PLAYED = 6, 3
CACHE = os.environ.get("SELECTION_CACHE", "/tmp/daily_selection")
# (per-series metric, what the guard and the one model for all compare, mode, guard windows). MAE averaged
# over series is the pooled error: a series weighs what it sells.
RULES = {
    "today: sMAPE, guard on sMAPE": ("smape", "smape", "auto", 1),
    "sMAPE, guard on MAE (pooled)": ("smape", "mae", "auto", 1),
    "sMAPE, guard on MAE (pooled), 2 windows": ("smape", "mae", "auto", 2),
    "WAPE, guard on MAE (pooled)": ("wape", "mae", "auto", 1),
    "WAPE, guard on MAE (pooled), 2 windows": ("wape", "mae", "auto", 2),
    "MASE, guard on MASE": ("mase", "mase", "auto", 1),
    "per series on sMAPE, no guard": ("smape", "smape", "per_series", 1),
    "one model for all on MAE (pooled)": ("wape", "mae", "global", 1),
    "one model for all on sMAPE": ("smape", "smape", "global", 1),
}


def backtest_of(name: str) -> tuple[pd.DataFrame, pd.DataFrame, object, pd.DataFrame]:
    load, file = DATASETS[name]
    df, raw = load()
    settings = load_settings(os.path.join(SETTINGS, file))
    train, _, cutoff = holdout_split(df, settings.horizon, 3)
    settings = settings.model_copy(update={"backtest": settings.backtest.model_copy(update={"windows": WINDOWS})})
    x = regressors_of(raw[raw["ds"] <= cutoff], settings)
    x = x.merge(closed_rows(x, settings), on=["unique_id", "ds"])
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"{name}.parquet")
    if os.path.exists(path):
        return pd.read_parquet(path), train, settings, x
    models = default_models(settings, declared_drivers(settings))
    backtest, cpu = timed(run_backtest, train, settings, models, 1, x)
    print(f"{name}: backtest of {len(models)} models, {WINDOWS} windows, {cpu:.0f} CPU-s, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    backtest.to_parquet(path)
    return backtest, train, settings, x


def played(name: str) -> list[dict]:
    backtest, train, settings, x = backtest_of(name)
    cutoffs = sorted(backtest["cutoff"].unique())
    shut = x[["unique_id", "ds", "closed"]]
    rows = []
    for w in range(WINDOWS - PLAYED, WINDOWS):
        seen = backtest[backtest["cutoff"].isin(cutoffs[w - 3:w])]
        window = backtest[(backtest["cutoff"] == cutoffs[w]) & ~backtest["closed"]]
        for label, (metric, guard, mode, windows) in RULES.items():
            start = time.perf_counter()
            champions, decision = choose_champions(
                evaluate(seen, train, settings.season), seen, train, settings.season, mode=mode,
                guard_windows=windows, metric=metric, guard_metric=guard)
            picked = window.merge(champions[["unique_id", "model"]], on=["unique_id", "model"])
            rows.append({"dataset": name, "window": str(pd.Timestamp(cutoffs[w]).date()), "rule": label,
                         **scores(picked[["unique_id", "ds", "y"]], picked[["unique_id", "ds", "y_hat"]], shut),
                         "mode": decision["mode"], "mix": champions["model"].value_counts().head(3).to_dict(),
                         "seconds": time.perf_counter() - start})
    return rows


def interval_coverage(name: str) -> list[dict]:
    """Each calibration method's coverage on each played window, the champions chosen by the product's daily
    rule and calibrated on the three windows before it (the same protocol: never a holdout)."""
    backtest, train, settings, _ = backtest_of(name)
    cutoffs = sorted(backtest["cutoff"].unique())
    rows = []
    for w in range(WINDOWS - PLAYED, WINDOWS):
        seen = backtest[backtest["cutoff"].isin(cutoffs[w - 3:w])]
        champions, _ = choose_champions(
            evaluate(seen, train, settings.season), seen, train, settings.season, guard_windows=guard_windows(settings),
            metric=settings.selection.metric, guard_metric=guard_metric(settings))
        picked = backtest[(backtest["cutoff"] == cutoffs[w]) & ~backtest["closed"]].merge(
            champions[["unique_id", "model"]], on=["unique_id", "model"])
        step = ((picked["ds"] - picked["cutoff"]) / pd.Timedelta(days=1)).astype(int).to_numpy()
        for method in CALIBRATIONS:
            calibration = calibrate(seen.merge(champions[["unique_id", "model"]], on=["unique_id", "model"]),
                                    champions, train, [80, 95], settings.horizon, method)
            row = {"dataset": name, "window": str(pd.Timestamp(cutoffs[w]).date()), "method": method}
            for level in (80, 95):
                half = calibration.half_widths(list(picked["unique_id"]), settings.horizon, level)
                width = half[range(len(picked)), step - 1]
                inside = (picked["y"] - picked["y_hat"]).abs().to_numpy() <= width + 1e-9
                row[f"cov{level}"] = 100 * inside.mean()
            rows.append(row)
    return rows


def main(datasets: list[str]) -> None:
    if os.environ.get("INTERVALS"):
        rows = pd.DataFrame([r for name in datasets for r in interval_coverage(name)])
        print(rows.round(1).to_string(index=False))
        print(rows.groupby(["dataset", "method"])[["cov80", "cov95"]].mean().round(1).to_string())
        return
    rows = pd.DataFrame([r for name in datasets for r in played(name)])
    pd.set_option("display.width", 250)
    print(rows.round(2).to_string(index=False))
    print("\nmean over the played windows")
    print(rows.groupby(["dataset", "rule"], sort=False)[["wape", "smape"]].mean().round(2).unstack(0).to_string())


if __name__ == "__main__":
    main((sys.argv[1] if len(sys.argv) > 1 else "favorita,m5_daily").split(","))
