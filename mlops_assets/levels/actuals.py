"""The actuals of the groups of a declared hierarchy (total, category, brand...), summed from gold by DuckDB one
bucket at a time, for the tables that show or score every level (serving.sales_overall_by_level,
monitoring.forecast_accuracy_by_level).

The hierarchy, its node names and the sums are the levels layer's (levels/hierarchy.py): every gold series counts
in its parents, the ones gold.series_excluded keeps out of forecasting too. A bucket is a group of the first level
below the total with the groups under it, so a step holds one category's series, never gold whole; the total is
DuckDB's sum of every series per period. A group's period is ``imputed`` when any of its series' values there was
interpolated (a gap in a series file): the sum is then not an actual.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pandas as pd

from mlops_assets.levels.hierarchy import TOTAL, Hierarchy, aggregate, build_hierarchy, series_attributes, total_history
from mlops_assets.settings import Settings

ACTUAL_COLUMNS = ["level", "unique_id", "ds", "y", "imputed"]


def stored_hierarchy(con: duckdb.DuckDBPyConnection, gold: str, settings: Settings) -> Hierarchy:
    """The hierarchy of the series of the stored ``gold`` under settings.hierarchy."""
    return build_hierarchy(series_attributes(con, gold, settings), settings)


def group_buckets(hierarchy: Hierarchy) -> list[str]:
    """The top node of each bucket: the groups of the first level below the total (none with the total alone)."""
    if len(hierarchy.levels) <= 2:
        return []
    return hierarchy.nodes.loc[hierarchy.nodes["level"] == hierarchy.levels[1], "unique_id"].tolist()


def _imputed_periods(con: duckdb.DuckDBPyConnection, gold: str, hierarchy: Hierarchy) -> pd.DataFrame:
    """node, ds of the groups' periods with an interpolated series value (only such rows leave DuckDB)."""
    columns = [c[0] for c in con.execute(f"select * from {gold} limit 0").description]
    if "imputed" not in columns:
        return pd.DataFrame({"node": pd.Series(dtype=object), "ds": pd.Series(dtype="datetime64[ns]")})
    rows = con.execute(f"select distinct unique_id::varchar as unique_id, ds from {gold} where imputed").df()
    groups = hierarchy.membership[hierarchy.membership["node"] != hierarchy.membership["unique_id"]]
    out = rows.merge(groups, on="unique_id")[["node", "ds"]].drop_duplicates()
    return out.assign(ds=pd.to_datetime(out["ds"]).astype("datetime64[ns]"))


def _with_levels(sums: pd.DataFrame, hierarchy: Hierarchy, imputed: pd.DataFrame) -> pd.DataFrame:
    level = hierarchy.nodes.set_index("unique_id")["level"]
    flagged = pd.MultiIndex.from_frame(imputed[["node", "ds"]])
    keys = pd.MultiIndex.from_arrays([sums["unique_id"], pd.to_datetime(sums["ds"])])
    out = sums.assign(level=sums["unique_id"].map(level).to_numpy(), imputed=keys.isin(flagged))
    return out[ACTUAL_COLUMNS].reset_index(drop=True)


def group_actuals(con: duckdb.DuckDBPyConnection, gold: str, hierarchy: Hierarchy,
                  frequency: str) -> Iterator[pd.DataFrame]:
    """level, unique_id, ds, y, imputed of every group above the series: the total first, then one bucket at a
    time (a group of the first level below the total and the groups under it), each on its period grid."""
    imputed = _imputed_periods(con, gold, hierarchy)
    yield _with_levels(total_history(con, gold, frequency).assign(unique_id=TOTAL), hierarchy, imputed)
    for top in group_buckets(hierarchy):
        part = hierarchy.below(top)
        sums = aggregate(con, gold, part, frequency)
        yield _with_levels(sums[~sums["unique_id"].isin(set(part.bottom_ids))], hierarchy, imputed)
