"""The gold layer by bucket of series, so that a run holds one bucket's rows, never all the raw data.

Series fall into buckets by a DuckDB hash of their id (order lines by their product, so that a product x
customer series never splits), ``settings.compute.bucket_series`` series per bucket on average. What every
bucket must agree on comes first: for order lines, the first and last order day (SQL); for series files,
each series' first and last period with a value (a first pass over the buckets, since telling a value
from a misfit is the pure code's work), from which ``series_facts`` derives the grid and the ends. Then
each bucket's raw rows go through the same pure functions (``build_gold``, ``build_regressors``) and each
result is written as a Parquet part; the caller swaps the tables in from the parts in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.buckets import bucket_count, in_bucket
from mlops_assets.gold.aggregation import OrderFacts, build_gold, series_facts, series_spans
from mlops_assets.gold.exclusions import ExclusionSummary, summary_from_counts
from mlops_assets.gold.regressors import build_regressors
from mlops_assets.settings import Settings
from mlops_assets.warehouse import Connect, table_exists, write_part


@dataclass(frozen=True)
class Parts:
    """Parquet parts written by bucket: the glob of each table's parts, and how many buckets there were."""

    patterns: dict[str, str]
    buckets: int


def _read(con: duckdb.DuckDBPyConnection, table: str, where: str = "true") -> pd.DataFrame | None:
    """The rows of ``table`` that ``where`` keeps, in the table's order (None when it does not exist)."""
    if not table_exists(con, table):
        return None
    return con.execute(f"select * from {table} where {where}").df()


def _order_buckets(con: duckdb.DuckDBPyConnection, settings: Settings,
                   buckets: int) -> Iterator[dict[str, pd.DataFrame | None]]:
    customers = "customer_id" in settings.grain
    for b in range(buckets):
        products = in_bucket("product_id", buckets, b)
        yield {
            "sales_orders": _read(con, "raw.sales_orders", products),
            "products": _read(con, "raw.products", products),
            "promotions": _read(con, "raw.promotions", products),
            "customers": _read(con, "raw.customers", "customer_id::varchar in (select customer_id::varchar "
                               f"from raw.sales_orders where {products})") if customers else None,
        }


def _series_buckets(con: duckdb.DuckDBPyConnection, buckets: int) -> Iterator[dict[str, pd.DataFrame | None]]:
    for b in range(buckets):
        yield {"series": _read(con, "raw.series", in_bucket("unique_id", buckets, b))}


def gold_by_bucket(connect: Connect, settings: Settings, folder: Path,
                   log: Callable[[str], None] = lambda _m: None) -> Parts:
    """gold.sales_data_for_forecast and gold.series_excluded of the raw tables of ``settings.source``, as
    Parquet parts under ``folder`` ('gold' and 'excluded'), one bucket of series at a time."""
    _clear(folder)
    with connect() as con:
        if settings.source == "series":
            buckets = bucket_count(con, "raw.series", "unique_id", settings.compute.bucket_series)
            spans = [series_spans(tables["series"], settings) for tables in _series_buckets(con, buckets)]
            facts = series_facts(pd.concat(spans, ignore_index=True), settings)
            del spans
            inputs = _series_buckets(con, buckets)
        else:
            key = "product_id, customer_id" if "customer_id" in settings.grain else "product_id"
            buckets = bucket_count(con, "raw.sales_orders", f"({key})", settings.compute.bucket_series)
            facts = None
            if table_exists(con, "raw.sales_orders"):
                first, last = con.execute(
                    "select min(order_date)::date, max(order_date)::date from raw.sales_orders").fetchone()
                facts = OrderFacts(pd.Timestamp(first), pd.Timestamp(last)) if first is not None else None
            inputs = _order_buckets(con, settings, buckets)
        writer = _PartWriter(folder, ("gold", "excluded"))
        for b, tables in enumerate(inputs):
            writer.add(b, buckets, build_gold(tables, settings, facts))
            if buckets > 1:
                log(f"gold: bucket {b + 1}/{buckets}")
    return Parts(writer.finish(), buckets)


def regressors_by_bucket(connect: Connect, gold: str, settings: Settings, folder: Path) -> Parts:
    """gold.regressors of the ``gold`` table's series as Parquet parts under ``folder`` ('regressors'), one
    bucket of series at a time, each with only its products' promotions and its series' file rows."""
    _clear(folder)
    declared = settings.regressors.series_columns
    writer = _PartWriter(folder, ("regressors",))
    with connect() as con:
        buckets = bucket_count(con, gold, "unique_id", settings.compute.bucket_series)
        present = {c for (c,) in con.execute(f"select column_name from (describe {gold})").fetchall()}
        columns = ", ".join(["unique_id", "ds", *(c for c in ("product_id", "customer_id") if c in present)])
        # Every bucket's future reaches the same common end: the last period of all of gold, not the bucket's.
        data_end = pd.Timestamp(con.execute(f"select max(ds) from {gold}").fetchone()[0])
        for b in range(buckets):
            series = in_bucket("unique_id", buckets, b)
            rows = con.execute(f"select {columns} from {gold} where {series}").df()
            promotions = _read(con, "raw.promotions", "product_id::varchar in (select product_id::varchar "
                               f"from {gold} where {series})") if "product_id" in present else None
            files = _read(con, "raw.series", series) if declared else None
            table = build_regressors(rows, promotions, settings.frequency, settings.horizon, settings.grain,
                                     settings.regressors.country, files, declared, data_end)
            writer.add(b, buckets, (table,))
    return Parts(writer.finish(), buckets)


def stored_exclusion_summary(con: duckdb.DuckDBPyConnection, gold: str, excluded: str,
                             threshold: float) -> ExclusionSummary:
    """summarize_exclusions of the stored tables, counted by DuckDB rather than read whole."""
    series = con.execute(f"select count(*) from (select unique_id from {gold} union "
                         f"select unique_id from {excluded})").fetchone()[0]
    counts = con.execute(f"select reason_code, count(*) from {excluded} group by reason_code").fetchall()
    return summary_from_counts(int(series), dict(counts), threshold)


class _PartWriter:
    """One part per bucket and table; an empty result is skipped unless no bucket had rows (the table then
    still gets its columns from the last, empty one)."""

    def __init__(self, folder: Path, names: tuple[str, ...]):
        self.folder, self.names, self.written = folder, names, dict.fromkeys(names, False)

    def add(self, bucket: int, buckets: int, frames: tuple[pd.DataFrame, ...]) -> None:
        for name, frame in zip(self.names, frames, strict=True):
            if len(frame) or (bucket == buckets - 1 and not self.written[name]):
                write_part(frame, self.folder / name / f"bucket-{bucket:05d}.parquet")
                self.written[name] = True

    def finish(self) -> dict[str, str]:
        return {name: str(self.folder / name / "*.parquet") for name in self.names}


def _clear(folder: Path) -> None:
    """A rerun after a failure starts from no parts: a part left from other buckets must not be loaded."""
    for stale in folder.glob("*/*.parquet"):
        stale.unlink()
