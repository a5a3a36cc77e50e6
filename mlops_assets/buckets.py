"""Cutting a table into sets of whole series, so that a step holds one set's rows, never the whole table.

Two ways, each with its own name:
- a **bucket** is a hash bucket: the rows whose ``hash(key::varchar) % buckets`` is one value. Any table
  cut by the same key and count falls into the same series, whatever its order (``bucket_count``,
  ``in_bucket``).
- a **range** is a run of consecutive ids in sorted order (``series_ranges``, ``range_rows``): ranges
  stacked one after the other keep a table's order, and the same bounds cut every table keyed by
  unique_id into the same series.
"""

from __future__ import annotations

import math

import duckdb
import pandas as pd

from mlops_assets.warehouse import checked_name, table_exists


def bucket_count(con: duckdb.DuckDBPyConnection, table: str, key: str, bucket_series: int) -> int:
    """Buckets for the distinct ``key`` (an SQL expression) of ``table``: about ``bucket_series`` each."""
    if not table_exists(con, table):
        return 1
    n = con.execute(f"select count(distinct {key}) from {table}").fetchone()[0]
    return max(1, math.ceil(n / bucket_series))


def in_bucket(column: str, buckets: int, bucket: int) -> str:
    """SQL that keeps the rows of ``column``'s hash bucket ``bucket`` of ``buckets``."""
    return f"hash({column}::varchar) % {max(1, buckets)} = {bucket}"


def series_ranges(con: duckdb.DuckDBPyConnection, source: str, range_series: int) -> list[tuple[str, str]]:
    """The first and last unique_id (as text) of consecutive ranges of ``range_series`` series of ``source``
    (a table or a parenthesised query), in unique_id order; empty when it has no rows."""
    if range_series < 1:
        raise ValueError(f"bucket_series must be at least 1, got {range_series}")
    return [tuple(bounds) for bounds in con.execute(
        f"select min(id), max(id) from (select id, (row_number() over (order by id) - 1) // {int(range_series)} "
        f"as k from (select distinct unique_id::varchar as id from {source})) group by k order by k"
    ).fetchall()]


def range_rows(
    con: duckdb.DuckDBPyConnection, table: str, bounds: tuple[str, str] | None, columns: str = "*", where: str = ""
) -> pd.DataFrame:
    """The rows of one range of ``series_ranges`` (None: every row) of a table keyed by unique_id, those
    of them that ``where`` (SQL) keeps."""
    conditions = [f"({where})"] if where else []
    if bounds is not None:
        conditions.append("unique_id::varchar between ? and ?")
    filtered = f" where {' and '.join(conditions)}" if conditions else ""
    return con.execute(f"select {columns} from {checked_name(table)}{filtered}", list(bounds or [])).df()
