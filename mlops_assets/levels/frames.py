"""The levels layer on frames (tests, benchmarks): gold in an in-memory DuckDB beside the tables the chain
would have written from it, made by the product's own functions (the backtest, the selection, each champion
refitted with calibrated intervals as the upper nodes are), without Dagster, the registry or regressors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pandas as pd

from mlops_assets.forecasting.backtest import run_backtest, validate_history
from mlops_assets.forecasting.metrics import evaluate
from mlops_assets.forecasting.selection import choose_champions
from mlops_assets.forecasting.zoo import guard_metric, guard_windows
from mlops_assets.levels.layer import Tables
from mlops_assets.levels.upper import champion_forecasts
from mlops_assets.settings import Settings
from mlops_assets.warehouse import Connect


def chain_tables(gold: pd.DataFrame, excluded: set[str], settings: Settings) -> dict[str, pd.DataFrame]:
    """backtest, champions, forecasts of the series of ``gold`` not ``excluded``, as the chain makes them."""
    history = gold.loc[~gold["unique_id"].astype(str).isin(excluded), ["unique_id", "ds", "y"]]
    if history.empty:  # nothing forecast: the chain's tables are empty
        empty = pd.DataFrame({"unique_id": pd.Series([], dtype=str), "model": pd.Series([], dtype=str)})
        return {"backtest": empty.assign(cutoff=gold["ds"].iloc[:0], ds=gold["ds"].iloc[:0], y=0.0, y_hat=0.0),
                "champions": empty, "forecasts": empty.drop(columns="model").assign(
                    ds=gold["ds"].iloc[:0], y_hat=0.0, **{f"{s}_{lv}": 0.0 for lv in settings.interval_levels
                                                          for s in ("lo", "hi")})}
    history = validate_history(history.astype({"unique_id": str}), settings.min_series_length)
    backtest = run_backtest(history, settings, n_jobs=1)
    sel = settings.selection
    evaluation = evaluate(backtest, history, settings.season)
    champions, _ = choose_champions(evaluation, backtest, history, settings.season, sel.mode, sel.global_tolerance,
                                    sel.margin, guard_windows(settings), sel.metric, guard_metric(settings))
    champions = champions[["unique_id", "model"]]
    forecasts = champion_forecasts(history, backtest, champions, settings)
    return {"backtest": backtest, "champions": champions, "forecasts": forecasts}


def in_memory(gold: pd.DataFrame, excluded: set[str] | list[str] = (), settings: Settings | None = None,
              chain: dict[str, pd.DataFrame] | None = None) -> Connect:
    """A Connect to an in-memory DuckDB holding ``gold``, the excluded ids and the chain's tables (``chain``,
    else chain_tables under ``settings``; neither: gold alone) under the warehouse's names (Tables())."""
    excluded = set(map(str, excluded))
    tables = Tables()
    frames = {tables.gold: gold,
              tables.excluded: pd.DataFrame({"unique_id": sorted(excluded)}, dtype=object)}
    if chain is None and settings is not None:
        chain = chain_tables(gold, excluded, settings)
    if chain is not None:
        frames.update({tables.backtest: chain["backtest"], tables.champions: chain["champions"],
                       tables.forecasts: chain["forecasts"]})
    con = duckdb.connect()
    for name, frame in frames.items():
        con.execute(f"create schema if not exists {name.split('.')[0]}")
        con.register("_frame", frame)
        picked = "unique_id::varchar as unique_id" if name == tables.excluded else "*"
        con.execute(f"create table {name} as select {picked} from _frame")
        con.unregister("_frame")

    @contextmanager
    def connect() -> Iterator[duckdb.DuckDBPyConnection]:
        cursor = con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    return connect
