"""serving.sales_overall_by_level: actuals and the coherent forecast of every node of a declared hierarchy, in
sales_overall's long form with a ``level`` column, and a PNG per group (total, category, brand) beside the series'.

A node's Train rows are its actuals (a group's summed from gold per period by levels/actuals.py, a series' its own
gold rows); its Predict rows are forecasting.forecasts_by_level's default method (``is_default``) with its
intervals. The groups are built one bucket at a time and the series one range at a time, each written as a
Parquet part (the caller replaces the table from the parts in one transaction), so no step holds the table whole.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.buckets import range_rows, series_ranges
from mlops_assets.levels.actuals import group_actuals, stored_hierarchy
from mlops_assets.serving.overall import BOUNDS, PREDICT, TRAIN, forecast_bounds
from mlops_assets.serving.plots import SeriesPlotWriter, rank_by_volume
from mlops_assets.settings import Settings
from mlops_assets.warehouse import require_table, write_part

# The groups the metadata's picture shows: the total and the biggest groups below it.
TOP_GROUPS = 4


def level_overall_columns(bounds: list[str] = BOUNDS) -> list[str]:
    return ["level", "unique_id", "ds", "origin", "sales", "imputed", *bounds, "method", "model"]


def build_level_overall(actuals: pd.DataFrame, forecasts: pd.DataFrame) -> pd.DataFrame:
    """Stack nodes' actuals (level, unique_id, ds, y, imputed: origin Train) and their default forecasts
    (forecasts_by_level rows: origin Predict, with method, the node's own champion as model, and the bounds)."""
    bounds = forecast_bounds(forecasts)
    train = actuals.rename(columns={"y": "sales"}).assign(origin=TRAIN, method=None, model=None,
                                                         **{b: float("nan") for b in bounds})
    predict = forecasts.rename(columns={"y_hat": "sales", "base_model": "model"}).assign(origin=PREDICT,
                                                                                       imputed=False)
    columns = level_overall_columns(bounds)
    parts = [frame[columns] for frame in (train, predict) if len(frame)]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    out = out.astype({"level": str, "unique_id": str, "origin": str, "sales": "float64", "imputed": bool,
                      **{b: "float64" for b in bounds}})
    out["ds"] = pd.to_datetime(out["ds"]).astype("datetime64[ns]")
    for column in ("method", "model"):
        out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out.sort_values(["unique_id", "ds", "origin"], kind="stable").reset_index(drop=True)


def plot_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """A node's rows as the series plots read them: the title names the reconciliation method."""
    return rows.assign(model="reconciled by " + rows["method"].fillna(""), model_version=None)


@dataclass(frozen=True)
class LevelOverallParts:
    parts: Path
    groups: int  # group nodes built (the series are in ``ranges`` ranges)
    ranges: int
    plots: object  # SeriesPlotWriter.finish() of the groups' PNGs
    top_rows: pd.DataFrame  # plot_rows of the biggest groups, for the picture in the metadata
    columns: pd.DataFrame

    @property
    def pattern(self) -> str:
        return str(self.parts / "*.parquet")


def unknown_nodes_error(unknown: list[str], forecasts: str, gold: str) -> ValueError:
    return ValueError(f"{forecasts} has {len(unknown)} node(s) that the hierarchy of {gold} lacks "
                      f"({', '.join(unknown[:10])}); the forecasts come from other data or settings: rematerialize "
                      "them.")


def build_overall_by_level(con: duckdb.DuckDBPyConnection, gold: str, forecasts: str, settings: Settings,
                           parts: Path, plots_folder: Path, range_series: int, max_series: int) -> LevelOverallParts:
    shutil.rmtree(parts, ignore_errors=True)
    for table in (gold, forecasts):
        require_table(con, table)
    hierarchy = stored_hierarchy(con, gold, settings)
    bottom = hierarchy.levels[-1]
    series = set(hierarchy.bottom_ids)
    known = set(hierarchy.nodes["unique_id"])
    stored = [uid for (uid,) in con.execute(f"select distinct unique_id::varchar from {forecasts} order by 1")
              .fetchall()]
    unknown = [uid for uid in stored if uid not in known]
    if unknown:
        raise unknown_nodes_error(unknown, forecasts, gold)
    groups_forecast = con.execute(f"select * from {forecasts} where is_default and level <> ?", [bottom]).df()
    # Units sold per group (DuckDB's sum per series, through the membership): ranks the PNGs before any bucket.
    volume = con.execute(f"select unique_id::varchar as unique_id, coalesce(sum(y), 0) as volume from {gold} "
                         "group by 1").df()
    members = hierarchy.membership[~hierarchy.membership["node"].isin(series)]
    volume = members.merge(volume, on="unique_id").groupby("node")["volume"].sum()
    group_ids = hierarchy.nodes.loc[hierarchy.nodes["level"] != bottom, "unique_id"]
    ranked = rank_by_volume(volume)
    top, columns, top_rows, k = set(ranked[:TOP_GROUPS]), None, [], 0
    with SeriesPlotWriter(plots_folder, ranked, group_ids, max_series) as writer:
        for k, actuals in enumerate(group_actuals(con, gold, hierarchy, settings.frequency)):
            rows = build_level_overall(actuals, groups_forecast[groups_forecast["unique_id"].isin(
                set(actuals["unique_id"]))])
            write_part(rows, parts / f"groups-{k:05d}.parquet")
            drawn = plot_rows(rows)
            writer.draw(drawn)
            top_rows.append(drawn[drawn["unique_id"].isin(top)])
            columns = rows.head(0)
        plots = writer.finish()
    ranges = series_ranges(con, gold, range_series)
    for j, bounds in enumerate(ranges):
        actuals = range_rows(con, gold, bounds, "unique_id::varchar as unique_id, ds, y::double as y" + (
            ", imputed" if "imputed" in _columns(con, gold) else ", false as imputed"))
        rows = build_level_overall(actuals.assign(level=bottom), range_rows(
            con, forecasts, bounds, where=f"is_default and level = '{bottom.replace(chr(39), chr(39) * 2)}'"))
        write_part(rows, parts / f"series-{j:05d}.parquet")
    return LevelOverallParts(parts, len(group_ids), len(ranges), plots, pd.concat(top_rows), columns)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [c[0] for c in con.execute(f"select * from {table} limit 0").description]
