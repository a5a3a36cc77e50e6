"""monitoring.forecast_accuracy scored a range of series at a time: a forecast, its actual and its champion are
all in the series' range, so no step holds more than one range of the history."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.buckets import range_rows, series_ranges
from mlops_assets.monitoring.accuracy import realized_vs_backtest, score_forecasts
from mlops_assets.monitoring.serving_requests import unscored_served
from mlops_assets.warehouse import require_table, table_exists, write_part


@dataclass(frozen=True)
class ScoredParts:
    parts: Path
    rows: int
    ranges: int
    # Realized against backtest SMAPE per series (realized_vs_backtest), every range's.
    realized: pd.DataFrame
    # No rows, the table's columns and types (from the last empty range when none scored anything).
    columns: pd.DataFrame

    @property
    def pattern(self) -> str:
        return str(self.parts / "*.parquet")


def score_by_range(con: duckdb.DuckDBPyConnection, *, history_table: str, served_table: str, gold: str,
                   champions: str, parts: Path, range_series: int) -> ScoredParts:
    shutil.rmtree(parts, ignore_errors=True)
    for table in (history_table, gold):
        require_table(con, table)
    served_stored = table_exists(con, served_table)
    ids = f"(select unique_id from {history_table}" + (
        f" union all select unique_id from {served_table})" if served_stored else ")")
    ranges = series_ranges(con, ids, range_series) or [None]
    realized, written, columns, empty = [], 0, None, None
    for k, bounds in enumerate(ranges):
        history = range_rows(con, history_table, bounds)
        served = unscored_served(
            history, range_rows(con, served_table, bounds) if served_stored else pd.DataFrame())
        history = history.assign(source="batch")
        if not served.empty:
            history = pd.concat([history, served], ignore_index=True)
        scored = score_forecasts(history, range_rows(con, gold, bounds, "unique_id, ds, y, imputed"))
        if scored.empty:
            empty = scored
            continue
        columns = scored.head(0) if columns is None else columns
        write_part(scored, parts / f"range-{k:05d}.parquet")
        written += len(scored)
        realized.append(realized_vs_backtest(scored, range_rows(con, champions, bounds)))
    return ScoredParts(parts, written, len(ranges), pd.concat(realized, ignore_index=True) if realized else
                       pd.DataFrame(), columns if columns is not None else empty)


def realized_ratio(realized: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """Mean realized SMAPE over mean backtest SMAPE, and the ten series furthest over their promise."""
    overall = float(realized["realized_smape"].mean() / max(realized["backtest_smape"].mean(), 1e-9))
    return overall, realized.sort_values("ratio", ascending=False).head(10)
