"""Static attributes of a series (settings.regressors.statics): does the global model do better with them?

Scored on the backtest windows *before* the earliest holdout of benchmarks/accuracy.py (``--origins``: the
last ``origins`` horizons of every series are dropped first), never on a holdout: the global model alone
(forecasting.global_model.backtest_global, the product's features and its regressors), without statics and
with each set of attributes gold holds; then the product's choice: the default zoo's backtest, champions
chosen (guard included) on the earlier windows, scored on the last one. sMAPE (mean over series, 0-200), WAPE
(%), CPU-seconds, wall seconds with the load average beside them.

Datasets with attributes: the product's sample (order lines; brand and category from the product master).
The shared sets carry none beyond the series id: Favorita store 1's series are its product families, the M5
CA_3 HOBBIES_2 items share one store and department, jewelry and carparts are bare ids.

    python benchmarks/statics.py                  # the sample, 4 origins held back, the product's 3 windows
    python benchmarks/statics.py --windows 6      # more backtest windows before the earliest holdout
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
from accuracy import _cpu, _last_periods, dataset_regressors
from daily import scores

from mlops_assets.forecasting.backtest import run_backtest
from mlops_assets.forecasting.global_model import backtest_global
from mlops_assets.forecasting.metrics import evaluate
from mlops_assets.forecasting.selection import choose_champions
from mlops_assets.forecasting.zoo import GLOBAL_MODEL, STATIC_PREFIX, default_models, guard_metric, guard_windows
from mlops_assets.settings import Settings

ATTRIBUTES = [[], ["brand"], ["category"], ["brand", "category"]]


def sample_gold(settings: Settings) -> pd.DataFrame:
    """The sample's eligible gold series with their attributes (orders -> gold, the product's path)."""
    from mlops_assets.gold.aggregation import build_gold
    from mlops_assets.ingest.ingestion import read_landing_file
    from mlops_assets.sample_data import generate_sample

    with tempfile.TemporaryDirectory() as tmp:
        files = generate_sample(Path(tmp))
        tables = {t: read_landing_file(p, t, landing_root=Path(tmp)).rows for t, p in files.items()}
    gold, excluded = build_gold(tables, settings)
    return gold[~gold["unique_id"].isin(excluded["unique_id"])].astype({"unique_id": str})


def measure(origins: int, windows: int) -> list[dict]:
    settings = Settings()
    gold = sample_gold(settings)
    train, _ = _last_periods(gold[["unique_id", "ds", "y"]], settings.horizon, origins - 1)
    x = dataset_regressors("sample", settings, train, train.iloc[:0])
    attributes = gold.sort_values("ds").drop_duplicates("unique_id", keep="last")
    rows = []
    for names in ATTRIBUTES:
        statics = attributes[["unique_id", *names]] if names else None
        cpu, wall = _cpu(), time.perf_counter()
        bt = backtest_global(train, x, settings.frequency, settings.season, settings.horizon, windows, settings.step,
                             settings.regressors.unknown_future, settings.seed, statics)
        row = {"dataset": "sample", "series": train["unique_id"].nunique(), "statics": "+".join(names) or "none",
               **scores(bt[["unique_id", "ds", "y"]], bt[["unique_id", "ds", "y_hat"]]),
               "cpu_s": _cpu() - cpu, "wall_s": time.perf_counter() - wall, "load": os.getloadavg()[0]}
        rows.append(row)
        print(row, flush=True)
    return rows


def chosen(origins: int, windows: int) -> list[dict]:
    """The product's choice with and without the statics: the default zoo's backtest (LightGBM's regressors
    carrying the statics as gold's query does), champions chosen on the earlier windows, scored on the last."""
    settings = Settings(backtest={"windows": windows})
    gold = sample_gold(settings)
    train, _ = _last_periods(gold[["unique_id", "ds", "y"]], settings.horizon, origins - 1)
    x = dataset_regressors("sample", settings, train, train.iloc[:0])
    attributes = gold.sort_values("ds").drop_duplicates("unique_id", keep="last")
    zoo = [m for m in default_models(settings) if m != GLOBAL_MODEL]
    local = run_backtest(train, settings, zoo, 1)
    rows = []
    for names in ATTRIBUTES:
        carried = x.merge(attributes[["unique_id", *names]].rename(columns=lambda c: STATIC_PREFIX + c
                                                                    if c != "unique_id" else c), on="unique_id")
        backtest = pd.concat([local, run_backtest(train, settings, [GLOBAL_MODEL], 1, carried)], ignore_index=True)
        last = backtest["cutoff"] == backtest["cutoff"].max()
        earlier = backtest[~last]
        champions, decision = choose_champions(
            evaluate(earlier, train, settings.season), earlier, train, settings.season,
            guard_windows=guard_windows(settings), metric=settings.selection.metric,
            guard_metric=guard_metric(settings))
        window = backtest[last].merge(champions[["unique_id", "model"]], on=["unique_id", "model"])
        row = {"dataset": "sample", "statics": "+".join(names) or "none", "product": True,
               **scores(window[["unique_id", "ds", "y"]], window[["unique_id", "ds", "y_hat"]]),
               "mode": decision["mode"], "lightgbm_champions": int((champions["model"] == GLOBAL_MODEL).sum()),
               "load": os.getloadavg()[0]}
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--origins", type=int, default=4)
    parser.add_argument("--windows", type=int, default=Settings().backtest.windows)
    args = parser.parse_args()
    for rows in (measure(args.origins, args.windows), chosen(args.origins, args.windows)):
        print(pd.DataFrame(rows).round(3).to_markdown(index=False))


if __name__ == "__main__":
    main()
