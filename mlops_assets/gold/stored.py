"""What the gold step reports of the stored gold tables, counted by DuckDB rather than read whole."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from mlops_assets.catalog import GOLD, RAW_SERIES, REGRESSORS, SERIES_EXCLUDED
from mlops_assets.gold.buckets import stored_exclusion_summary
from mlops_assets.gold.exclusions import ExclusionSummary
from mlops_assets.warehouse import table_exists


@dataclass(frozen=True)
class GoldStats:
    rows: int
    series: int
    imputed: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    # Units sold per period over every series (indexed by period).
    totals: pd.Series


def gold_stats(con: duckdb.DuckDBPyConnection) -> GoldStats:
    rows, series, imputed, first, last = con.execute(
        f"select count(*), count(distinct unique_id), count_if(imputed), min(ds), max(ds) from {GOLD}").fetchone()
    totals = con.execute(f"select ds, sum(y) as y from {GOLD} group by ds order by ds").df()
    return GoldStats(int(rows), int(series), int(imputed), first and pd.Timestamp(first),
                     last and pd.Timestamp(last), totals.set_index("ds")["y"])


def exclusion_summary(con: duckdb.DuckDBPyConnection, threshold: float) -> ExclusionSummary:
    return stored_exclusion_summary(con, GOLD.name, SERIES_EXCLUDED.name, threshold)


def exclusion_examples(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The first three series of each reason, in the table's order (by unique_id)."""
    return con.execute(f"select unique_id, reason_code, reason from {SERIES_EXCLUDED} qualify row_number() "
                       "over (partition by reason_code order by unique_id) <= 3 order by unique_id").df()


def regressor_counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """(rows, rows under a promotion, future rows under a planned promotion) of gold.regressors."""
    rows, promoted, planned = con.execute(
        f"select count(*), count_if(promo_depth > 0), count_if(is_future and promo_depth > 0) from {REGRESSORS}"
    ).fetchone()
    return int(rows), int(promoted), int(planned)


def columns_without_values(con: duckdb.DuckDBPyConnection, declared: list[str]) -> list[str]:
    """The declared columns that raw.series lacks, or holds no value in (all of them without raw.series)."""
    if not declared:
        return []
    if not table_exists(con, RAW_SERIES.name):
        return declared
    present = {c for (c,) in con.execute(f"select column_name from (describe {RAW_SERIES})").fetchall()}
    return [c for c in declared
            if c not in present or not con.execute(f'select count("{c}") from {RAW_SERIES}').fetchone()[0]]
