"""serving.sales_overall built a range of series at a time, with the series' PNGs drawn from the same ranges.

DuckDB cuts gold and the forecasts into ranges of whole series; each range's rows are written as a Parquet part
(the table is replaced from the parts in one transaction by the caller), drawn, and let go before the next.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.buckets import range_rows, series_ranges
from mlops_assets.serving.overall import build_sales_overall, default_attributes, unknown_series_error
from mlops_assets.serving.plots import SeriesPlotWriter, rank_by_volume
from mlops_assets.warehouse import require_table, write_part

# The series the metadata's picture shows (plot_top_series' default).
TOP_SERIES = 4


@dataclass(frozen=True)
class OverallParts:
    parts: Path
    ranges: int
    plots: object  # SeriesPlotWriter.finish(): written, drawn, removed, unplotted
    # The rows of the best-selling series, for the picture in the metadata.
    top_rows: pd.DataFrame
    # No rows, the table's columns and types.
    columns: pd.DataFrame

    @property
    def pattern(self) -> str:
        return str(self.parts / "*.parquet")


def build_overall_by_range(con: duckdb.DuckDBPyConnection, gold: str, forecasts: str, parts: Path,
                           plots_folder: Path, range_series: int, max_series: int) -> OverallParts:
    shutil.rmtree(parts, ignore_errors=True)
    for table in (gold, forecasts):
        require_table(con, table)
    attributes = default_attributes([c[0] for c in con.execute(f"select * from {gold} limit 0").description])
    unknown = [uid for (uid,) in con.execute(
        f"select distinct unique_id::varchar from {forecasts} where unique_id::varchar not in "
        f"(select unique_id::varchar from {gold}) order by 1").fetchall()]
    if unknown:
        raise unknown_series_error(unknown)
    # Units sold per series, summed by DuckDB: it ranks the series to plot before any range is read.
    volume = con.execute(f"select unique_id::varchar as unique_id, coalesce(sum(y), 0) as volume from {gold} "
                         "group by 1").df().set_index("unique_id")["volume"]
    ranked = rank_by_volume(volume)
    top, columns, top_rows = ranked[:TOP_SERIES], None, []
    ranges = series_ranges(con, gold, range_series) or [None]
    with SeriesPlotWriter(plots_folder, ranked, volume.index, max_series) as writer:
        for k, bounds in enumerate(ranges):
            rows = build_sales_overall(range_rows(con, gold, bounds), range_rows(con, forecasts, bounds), attributes)
            write_part(rows, parts / f"range-{k:05d}.parquet")
            writer.draw(rows)
            top_rows.append(rows[rows["unique_id"].isin(top)])
            columns = rows.head(0) if columns is None else columns
        series_plots = writer.finish()
    return OverallParts(parts, len(ranges), series_plots, pd.concat(top_rows), columns)
