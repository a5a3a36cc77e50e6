"""The hierarchy of a gold table and its aggregated series: one node per total, per group and per series.

Levels come from settings.hierarchy: each a list of columns, top first; a total over every series is always on
top and the series are the bottom. A node's id spells its path: ``total``, ``category/Cream``,
``category/Cream/brand/Bridel``; a series keeps its own id. A missing attribute is the group ``(none)``.

Which group a series belongs to is decided by the gold table as it stands: gold joins the current master data
(raw.products, raw.customers) to every period, so a product that moved brand has its whole history, and its
forecast, counted under its new brand (the old brand's past shrinks accordingly). A series whose attribute
differs between periods (a series file that changed it) takes the value of its latest period.

Every gold series counts in its parents' actuals, the ones gold.series_excluded keeps out of forecasting too:
a category's sales are all its products' sales. Summing is DuckDB's GROUP BY over the stored gold rows of the
series asked for (one bucket at a time; benchmarks/hierarchy.py measures it against pandas' groupby and
``hierarchicalforecast.utils.aggregate``); each aggregate runs on one period grid from its first period to its
last, a period without any child row being 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from mlops_assets.settings import HierarchySettings, Settings

TOTAL = "total"
NONE_GROUP = "(none)"
# Columns a level may group by: gold's attributes (orders; series files carry the product ones).
GOLD_ATTRIBUTES = ("category", "brand", "product_name", "product_id", "channel", "region", "customer_id",
                   "customer_name")
DEFAULT_ORDER_LEVELS = [["category"], ["category", "brand"]]


def level_name(columns: list[str]) -> str:
    """The level's name: ``total`` for the top, else its columns joined by '/' (``category/brand``)."""
    return "/".join(columns) if columns else TOTAL


def bottom_level_name(settings: Settings) -> str:
    """The series' own level: product, product/customer, or series for series files."""
    if settings.source == "series":
        return "series"
    return "product/customer" if "customer_id" in settings.grain else "product"


def hierarchy_settings(settings: Settings) -> HierarchySettings:
    """The declared hierarchy; its defaults when none is (the layer is then not wired, but callable)."""
    return settings.hierarchy if settings.hierarchy is not None else HierarchySettings()


def level_spec(settings: Settings) -> list[list[str]]:
    """The levels above the series, the total first: [[], [category], [category, brand]] by default."""
    declared = hierarchy_settings(settings).levels
    if declared is None:
        declared = DEFAULT_ORDER_LEVELS if settings.source == "orders" else []
    return [[], *declared]


def series_attributes(con: duckdb.DuckDBPyConnection, gold: str, settings: Settings) -> pd.DataFrame:
    """One row per series of the stored table ``gold``: unique_id and every column the levels group by, from
    its latest period (DuckDB's arg_max: one small row per series is all that leaves DuckDB).

    Raises ValueError naming a level column that is neither a gold column nor a group of id_pattern, or a
    series id that id_pattern does not match.
    """
    columns = sorted({c for level in level_spec(settings) for c in level})
    declared = hierarchy_settings(settings).id_pattern
    pattern = re.compile(declared) if declared else None
    from_ids = [c for c in columns if pattern is not None and c in pattern.groupindex]
    from_gold = [c for c in columns if c not in from_ids]
    present = [c[0] for c in con.execute(f"select * from {gold} limit 0").description]
    unknown = [c for c in from_gold if c not in present]
    if unknown:
        groups = sorted(pattern.groupindex) if pattern is not None else []
        raise ValueError(f"hierarchy.levels names {unknown}: not a column of {gold} "
                         f"({', '.join(c for c in GOLD_ATTRIBUTES if c in present)}) nor a named group of "
                         f"hierarchy.id_pattern ({groups or 'not set'})")
    picked = "".join(f", arg_max({c}::varchar, ds) as {c}" for c in from_gold)
    latest = con.execute(f"select unique_id::varchar as unique_id{picked} from {gold} group by 1 order by 1").df()
    latest = latest.set_index("unique_id")
    if from_ids:
        parts = latest.index.to_series().str.extract(pattern)
        unmatched = parts.index[parts[from_ids].isna().any(axis=1)]
        if len(unmatched):
            raise ValueError(f"hierarchy.id_pattern {pattern.pattern!r} does not match {len(unmatched)} series "
                             f"id(s), e.g. {sorted(unmatched)[:5]}: every id must match for its levels to be known")
        for column in from_ids:
            latest[column] = parts[column]
    out = latest.reset_index()
    for column in columns:
        out[column] = out[column].astype(object).where(out[column].notna(), NONE_GROUP).astype(str)
    return out[["unique_id", *columns]]


def node_ids(attributes: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Each series' ancestor at the level of ``columns``: ``total`` or ``category/X/brand/Y``."""
    if not columns:
        return pd.Series(TOTAL, index=attributes.index, dtype=object)
    ids = pd.Series("", index=attributes.index, dtype=object)
    for i, column in enumerate(columns):
        ids = ids + ("/" if i else "") + column + "/" + attributes[column].astype(str)
    return ids


@dataclass(frozen=True)
class Hierarchy:
    """The nodes of every level and, for each, the series below it."""

    levels: list[str]  # top first; the last is the series' own level
    nodes: pd.DataFrame  # unique_id, level: upper levels in order, then the series, each sorted by id
    membership: pd.DataFrame  # node, unique_id (a bottom series): which series sum into which node

    @property
    def bottom_ids(self) -> list[str]:
        return self.nodes.loc[self.nodes["level"] == self.levels[-1], "unique_id"].tolist()

    def below(self, root: str) -> Hierarchy:
        """The part of the hierarchy under the node ``root`` (itself included), the levels above it left out."""
        level = self.nodes.loc[self.nodes["unique_id"] == root, "level"].iloc[0]
        levels = self.levels[self.levels.index(level):]
        series = self.membership.loc[self.membership["node"] == root, "unique_id"]
        nodes = self.nodes[self.nodes["level"].isin(levels)]
        members = self.membership[self.membership["unique_id"].isin(series) & self.membership["node"].isin(
            nodes["unique_id"])]
        nodes = nodes[nodes["unique_id"].isin(set(members["node"]))]
        return Hierarchy(levels, nodes.reset_index(drop=True), members.reset_index(drop=True))

    def tags(self) -> dict[str, np.ndarray]:
        """hierarchicalforecast's tags: level name -> its node ids."""
        return {level: self.nodes.loc[self.nodes["level"] == level, "unique_id"].to_numpy(dtype=object)
                for level in self.levels}

    def summing_matrix(self) -> pd.DataFrame:
        """hierarchicalforecast's S_df: unique_id, then one 0/1 column per series, rows in node order."""
        bottom = self.bottom_ids
        rows = pd.Index(self.nodes["unique_id"])
        s = np.zeros((len(rows), len(bottom)))
        s[rows.get_indexer(self.membership["node"]), pd.Index(bottom).get_indexer(self.membership["unique_id"])] = 1
        return pd.concat([pd.DataFrame({"unique_id": rows}), pd.DataFrame(s, columns=bottom)], axis=1)


def build_hierarchy(attributes: pd.DataFrame, settings: Settings) -> Hierarchy:
    """The hierarchy of the series in ``attributes`` (series_attributes) under settings.hierarchy."""
    bottom = bottom_level_name(settings)
    spec = level_spec(settings)
    names = [level_name(columns) for columns in spec]
    if bottom in names:
        raise ValueError(f"hierarchy.levels: a level may not be named {bottom!r}, the series' own level")
    attributes = attributes.sort_values("unique_id", kind="stable").reset_index(drop=True)
    nodes, members = [], []
    for columns, name in zip(spec, names, strict=True):
        ids = node_ids(attributes, columns)
        nodes.append(pd.DataFrame({"unique_id": sorted(ids.unique()), "level": name}))
        members.append(pd.DataFrame({"node": ids.to_numpy(), "unique_id": attributes["unique_id"].to_numpy()}))
    series = attributes["unique_id"].astype(str)
    nodes.append(pd.DataFrame({"unique_id": series, "level": bottom}))
    members.append(pd.DataFrame({"node": series, "unique_id": series}))
    all_nodes = pd.concat(nodes, ignore_index=True)
    clash = all_nodes.loc[all_nodes["unique_id"].duplicated(), "unique_id"]
    if len(clash):
        raise ValueError(f"hierarchy: node id(s) {sorted(clash)[:5]} name both a series and a group; rename the "
                         "series or change hierarchy.levels")
    return Hierarchy([*names, bottom], all_nodes, pd.concat(members, ignore_index=True))


def aggregate(con: duckdb.DuckDBPyConnection, gold: str, hierarchy: Hierarchy, frequency: str) -> pd.DataFrame:
    """unique_id, ds, y of every node of ``hierarchy``: its series as stored in ``gold``, each group the sum of its
    series (DuckDB's GROUP BY), in node order. Only the hierarchy's series are read.

    A group's rows run on the period grid from its first period to its last; a period without any of its
    series' rows is 0 (the series did not exist, or had ended).
    """
    return _sums(con, gold, hierarchy, frequency, with_series=True)


def group_sums(con: duckdb.DuckDBPyConnection, gold: str, hierarchy: Hierarchy, frequency: str) -> pd.DataFrame:
    """unique_id, ds, y of the groups of ``hierarchy`` alone (not its series), as ``aggregate`` sums them: a
    small table (groups x periods) however many series gold holds."""
    return _sums(con, gold, hierarchy, frequency, with_series=False)


def _sums(con: duckdb.DuckDBPyConnection, gold: str, hierarchy: Hierarchy, frequency: str,
          with_series: bool) -> pd.DataFrame:
    con.register("_level_members", hierarchy.membership[["node", "unique_id"]])
    series = "union all select unique_id, ds, y, true from bottom" if with_series else ""
    try:
        rows = con.execute(f"""
            with bottom as (
                select unique_id::varchar as unique_id, ds, y::double as y from {gold}
                where unique_id::varchar in (select unique_id from _level_members where node = unique_id))
            select m.node as unique_id, b.ds, sum(b.y) as y, false as is_series
            from bottom b join _level_members m on m.unique_id = b.unique_id and m.node <> m.unique_id
            group by 1, 2
            {series}""").df()
    finally:
        con.unregister("_level_members")
    sums = _fill_grid(rows[~rows["is_series"]], frequency)
    out = pd.concat([sums, rows.loc[rows["is_series"], ["unique_id", "ds", "y"]]], ignore_index=True)
    out["ds"] = pd.to_datetime(out["ds"]).astype("datetime64[ns]")
    order = pd.Index(hierarchy.nodes["unique_id"])
    out["_node"] = order.get_indexer(out["unique_id"])
    return out.sort_values(["_node", "ds"], kind="stable").drop(columns="_node").reset_index(drop=True)


def total_history(con: duckdb.DuckDBPyConnection, gold: str, frequency: str) -> pd.DataFrame:
    """unique_id ``total``, ds, y: every series of ``gold`` summed per period by DuckDB, on the period grid."""
    rows = con.execute(f"select '{TOTAL}' as unique_id, ds, sum(y)::double as y from {gold} group by 2").df()
    out = _fill_grid(rows, frequency)
    out["ds"] = pd.to_datetime(out["ds"]).astype("datetime64[ns]")
    return out.sort_values("ds").reset_index(drop=True)


def _fill_grid(sums: pd.DataFrame, frequency: str) -> pd.DataFrame:
    from utilsforecast.preprocessing import fill_gaps

    if sums.empty:
        return sums[["unique_id", "ds", "y"]]
    filled = fill_gaps(sums, freq=frequency, start="per_serie", end="per_serie")
    filled["y"] = filled["y"].fillna(0.0)
    return filled[["unique_id", "ds", "y"]]
