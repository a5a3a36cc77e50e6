"""The whole levels layer on the chain's stored tables, one bucket of the hierarchy at a time.

The series are not forecast again: their base forecasts are the chain's (each series' champion's rows in
forecasting.backtest_forecasts; its rows of forecasting.forecasts, what the registered model serves). Only the
groups above them are forecast here (levels.upper: the product's zoo and global model, on the engine, on the
series' own backtest cutoffs).

A bucket is a group of the first level below the total (a category) with everything below it: for BottomUp and
MinTrace within it, a category and its brands and products are independent of the other categories, so each is
read from DuckDB (its series' rows only, aggregated there), reconciled and scored on its own, and only its
small results are kept. Every reconciled method's total is the sum of its reconciled categories, its interval
the categories' half-widths added in quadrature (as independent normals, as hierarchicalforecast's BottomUp
does). So MinTrace weighs the levels from the category down, never the total against the categories; TopDown is
scaled to the total's own forecast afterwards, which makes it exactly the whole tree's TopDown (top_down.py).
A hierarchy with no level below the total (a series file's total alone) is one bucket, reconciled whole.

``hierarchy.reconciliation: auto`` takes the method whose scores, relative to BottomUp's level by level and
averaged over the levels, are lowest, among the methods no more than 1% worse than BottomUp at the series' own
level: chosen on the backtest windows, never on a holdout. Ties go to BottomUp.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from mlops_assets.forecasting.closures import ClosedPeriods, zero_closed
from mlops_assets.forecasting.zoo import default_models
from mlops_assets.levels import top_down
from mlops_assets.levels.forecast import (
    METHOD_ORDER,
    SCORES,
    Piece,
    _published,
    choose_method,
    future_periods,
    level_means,
    node_scores,
    non_negative,
    reconcile_piece,
)
from mlops_assets.levels.hierarchy import (
    TOTAL,
    Hierarchy,
    aggregate,
    build_hierarchy,
    hierarchy_settings,
    series_attributes,
)
from mlops_assets.levels.reconcile import BASE, PER_PERIOD, TOP_DOWN
from mlops_assets.levels.upper import Upper, forecast_upper
from mlops_assets.settings import Settings
from mlops_assets.warehouse import Connect

MINT_SHRINK = "MinTrace(mint_shrink)"
# Why MinTrace(mint_shrink) is not a candidate (docs/levels.md): it weighs by the base forecasts' in-sample
# error covariance, and the chain keeps no in-sample fitted values of the series.
MINT_SHRINK_LEFT_OUT = ("needs in-sample errors of every node; the series' forecasts are the chain's, which keeps "
                        "no fitted values")


@dataclass(frozen=True)
class Tables:
    """Where the layer reads: gold, the excluded series, and the chain's backtest, champions and forecasts."""

    gold: str = "gold.sales_data_for_forecast"
    excluded: str = "gold.series_excluded"
    backtest: str = "forecasting.backtest_forecasts"
    champions: str = "forecasting.series_champions"
    forecasts: str = "forecasting.forecasts"


@dataclass
class LevelResult:
    hierarchy: Hierarchy
    forecasts: pd.DataFrame  # level, unique_id, ds, method, y_hat, bounds, base_model, is_default
    evaluation: pd.DataFrame  # level, method, smape, mae, rmse, wape, n_series, n_windows, is_default
    method: str  # the default reconciliation
    champions: pd.DataFrame  # unique_id, model of each forecast node
    summary: dict = field(default_factory=dict)


def buckets(hierarchy: Hierarchy) -> list[str]:
    """The top node of each bucket: the groups of the first level below the total, else the total alone."""
    if len(hierarchy.levels) <= 2:
        return [TOTAL]
    first = hierarchy.levels[1]
    return hierarchy.nodes.loc[hierarchy.nodes["level"] == first, "unique_id"].tolist()


def stored_windows(con: duckdb.DuckDBPyConnection, tables: Tables, last: pd.Timestamp,
                   settings: Settings) -> pd.DataFrame:
    """cutoff, ds of every backtest window of the series that reach ``last`` (the data's end), as stored."""
    cutoffs = con.execute(f"""
        select distinct b.cutoff from {tables.backtest} b
        join (select unique_id::varchar as unique_id from {tables.gold} group by 1 having max(ds) = ?) g
          on b.unique_id::varchar = g.unique_id order by 1""", [last]).fetchall()
    offset = pd.tseries.frequencies.to_offset(settings.frequency)
    rows = [(pd.Timestamp(c), pd.Timestamp(c) + offset * k) for (c,) in cutoffs for k in range(1, settings.horizon + 1)]
    return pd.DataFrame(rows, columns=["cutoff", "ds"]).astype({"cutoff": "datetime64[ns]", "ds": "datetime64[ns]"})


def series_rows(con: duckdb.DuckDBPyConnection, tables: Tables, series: list[str], windows: pd.DataFrame,
                future: pd.DatetimeIndex, bounds: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The base forecasts of ``series`` from the chain: their champions' backtest rows on ``windows`` (unique_id,
    cutoff, ds, y_hat) and their served forecasts of the ``future`` periods (unique_id, ds, y_hat, bounds)."""
    con.register("_level_series", pd.DataFrame({"unique_id": pd.Series(series, dtype=object)}))
    con.register("_level_windows", windows)
    try:
        backtest = con.execute(f"""
            select b.unique_id::varchar as unique_id, b.cutoff::timestamp as cutoff, b.ds::timestamp as ds,
                   b.y_hat::double as y_hat
            from {tables.backtest} b
            join {tables.champions} c on b.unique_id::varchar = c.unique_id::varchar and b.model = c.model
            join _level_windows w on b.cutoff = w.cutoff and b.ds = w.ds
            where b.unique_id::varchar in (select unique_id from _level_series)""").df()
        picked = ", ".join(f"{b}::double as {b}" for b in bounds)
        forecasts = con.execute(f"""
            select unique_id::varchar as unique_id, ds::timestamp as ds, y_hat::double as y_hat, {picked}
            from {tables.forecasts}
            where unique_id::varchar in (select unique_id from _level_series) and ds >= ? and ds <= ?""",
                                [future[0], future[-1]]).df()
    finally:
        con.unregister("_level_series")
        con.unregister("_level_windows")
    for frame in (backtest, forecasts):
        for column in ("cutoff", "ds"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return backtest, forecasts


def forecast_levels(connect: Connect, settings: Settings, tables: Tables = Tables(), folder: Path | None = None,
                    log: Callable[[str], None] | None = None) -> LevelResult:
    """The layer on the stored gold (every series, excluded ones too) and the chain's tables (``tables``).

    ``folder``: scratch space for the upper nodes' backtest on the engine, reachable by every worker (removed
    when done; default a temporary folder, enough for the local engine)."""
    log = log or (lambda _m: None)
    bounds = [f"{s}_{lv}" for lv in settings.interval_levels for s in ("lo", "hi")]
    with connect() as con:
        attributes = series_attributes(con, tables.gold, settings)
        excluded = {uid for (uid,) in con.execute(f"select unique_id::varchar from {tables.excluded}").fetchall()}
        negative, last = con.execute(
            f"select count(*) filter (where y < 0) > 0, max(ds) from {tables.gold}").fetchall()[0]
        champions = con.execute(f"select unique_id::varchar as unique_id, model from {tables.champions} "
                                "order by 1").df()
        last = pd.Timestamp(last)
        windows = stored_windows(con, tables, last, settings)
        ends = con.execute(f"select unique_id::varchar, max(ds) from {tables.gold} group by 1").fetchall()
    hierarchy = build_hierarchy(attributes, settings)
    forecast = set(champions["unique_id"]) - excluded
    if not set(hierarchy.bottom_ids) & forecast:
        raise ValueError(f"levels: no series of {tables.gold} is forecast (all are in {tables.excluded}); "
                         "see its reasons")
    champions = champions[champions["unique_id"].isin(forecast)]
    nonnegative = non_negative(negative, settings)
    candidates = list(PER_PERIOD)  # the candidates but mint_shrink (MINT_SHRINK_LEFT_OUT)
    scratch = Path(tempfile.mkdtemp(prefix="levels-")) if folder is None else folder
    try:
        upper = forecast_upper(connect, tables.gold, hierarchy, forecast, last,
                               sorted(windows["cutoff"].unique()), settings, scratch,
                               log=lambda m: log(f"levels: {m}"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    reaching = {uid for uid, end in ends if pd.Timestamp(end) == last}
    future = future_periods(last, settings)
    tops = buckets(hierarchy)
    pieces = []
    for top in tops:
        part = hierarchy.below(top)
        with connect() as con:
            panel = aggregate(con, tables.gold, part, settings.frequency)
            bottom = [uid for uid in part.bottom_ids if uid in forecast]
            backtest, served = series_rows(con, tables, bottom, windows, future, bounds)
        pieces.append(_piece(part, panel, upper, backtest, served, champions, windows, reaching, last, settings,
                             candidates, nonnegative))
        del panel, backtest, served
    if tops != [TOTAL]:
        top, backtest_factors, final_factors = forecast_total(upper, pieces, last, settings, nonnegative)
        pieces = [top_down.scaled(p, backtest_factors, final_factors, bounds, nonnegative, settings.season)
                  for p in pieces] + [top]
    result = _combine(hierarchy, pieces, settings, candidates, nonnegative, len(tops))
    result.summary["upper_nodes_forecast"] = int(len(upper.champions))
    result.summary["upper_backtest_cpu_seconds"] = round(upper.cpu_seconds, 1)
    return result


def _piece(part: Hierarchy, panel: pd.DataFrame, upper: Upper, backtest: pd.DataFrame, served: pd.DataFrame,
           champions: pd.DataFrame, windows: pd.DataFrame, reaching: set[str], last: pd.Timestamp,
           settings: Settings, candidates: list[str], nonnegative: bool) -> Piece:
    """One bucket's Piece: its groups' base forecasts from ``upper``, its series' from the chain's rows."""
    nodes = set(part.nodes["unique_id"])
    groups = upper.champions[upper.champions["unique_id"].isin(nodes)]
    base_backtest = pd.concat([upper.backtest.loc[upper.backtest["unique_id"].isin(groups["unique_id"]),
                                                  ["unique_id", "cutoff", "ds", "y_hat"]], backtest],
                              ignore_index=True)
    base_final = pd.concat([upper.forecasts[upper.forecasts["unique_id"].isin(groups["unique_id"])], served],
                           ignore_index=True)
    series = champions[champions["unique_id"].isin(nodes)]
    scored = [uid for uid in part.nodes["unique_id"] if uid in set(groups["unique_id"])
              or (uid in set(series["unique_id"]) and uid in reaching)]
    top = part.nodes["unique_id"].iloc[0]
    if groups.empty and series.empty:  # nothing below is forecast: 0 everywhere (no solver's traces)
        bounds = [f"{s}_{lv}" for lv in settings.interval_levels for s in ("lo", "hi")]
        grid = pd.MultiIndex.from_product([part.nodes["unique_id"], future_periods(last, settings), METHOD_ORDER],
                                          names=["unique_id", "ds", "method"]).to_frame(index=False)
        return Piece(pd.DataFrame(columns=["unique_id", "method", *SCORES, "n_windows"]),
                     pd.DataFrame(columns=["unique_id", "cutoff", "ds", "model", "y_hat"]),
                     grid.assign(y_hat=0.0, **{b: 0.0 for b in bounds}), pd.DataFrame(columns=["unique_id", "model"]),
                     top)
    reconciled, forecasts, failed = reconcile_piece(panel, part, base_backtest, base_final, windows, scored, last,
                                                    settings, candidates, nonnegative)
    scores = node_scores(reconciled, panel, scored, settings.season) if len(reconciled) else pd.DataFrame(
        columns=["unique_id", "method", *SCORES, "n_windows"])
    roots = reconciled.loc[reconciled["unique_id"] == top, ["unique_id", "cutoff", "ds", "model", "y_hat"]]
    top_down_rows = reconciled.loc[reconciled["model"] == TOP_DOWN, ["unique_id", "cutoff", "ds", "y", "y_hat",
                                                                     "closed"]]
    levels = part.nodes.set_index("unique_id")["level"]
    decisions = {level: decision for level, decision in upper.decisions.items() if level in set(levels)}
    return Piece(scores, roots.reset_index(drop=True), forecasts,
                 pd.concat([groups, series], ignore_index=True), top, failed, decisions,
                 top_down_rows.reset_index(drop=True))


def forecast_total(upper: Upper, pieces: list[Piece], last: pd.Timestamp, settings: Settings,
                   nonnegative: bool) -> tuple[Piece, pd.Series, pd.Series]:
    """The total: Base its own champion (levels.upper); each reconciled method the sum of the buckets',
    TopDown's scaled to the total's own forecast (top_down.py). Also TopDown's factors per window and period
    and per future period."""
    history = upper.history[upper.history["unique_id"] == TOTAL]
    champions = upper.champions[upper.champions["unique_id"] == TOTAL]
    decisions = {TOTAL: upper.decisions[TOTAL]} if TOTAL in upper.decisions else {}
    base_rows = upper.backtest[upper.backtest["unique_id"] == TOTAL]
    if "closed" not in base_rows:
        base_rows = base_rows.assign(closed=False)
    base_rows = base_rows[["unique_id", "cutoff", "ds", "y", "y_hat", "closed"]]
    roots = pd.concat([p.roots for p in pieces], ignore_index=True)
    summed = (roots[roots["model"] != BASE].groupby(["model", "cutoff", "ds"], as_index=False)["y_hat"].sum()
              .merge(base_rows[["cutoff", "ds", "y", "closed"]], on=["cutoff", "ds"]))
    backtest_factors = top_down.factors(base_rows.set_index(["cutoff", "ds"])["y_hat"], roots, ["cutoff", "ds"])
    split = summed["model"] == TOP_DOWN
    summed.loc[split, "y_hat"] *= backtest_factors.reindex(
        pd.MultiIndex.from_frame(summed.loc[split, ["cutoff", "ds"]])).fillna(1.0).to_numpy()
    rows = pd.concat([base_rows.assign(model=BASE), summed.assign(unique_id=TOTAL)], ignore_index=True)
    scores = node_scores(rows, history, [TOTAL], settings.season)

    bounds = [f"{s}_{lv}" for lv in settings.interval_levels for s in ("lo", "hi")]
    base = upper.forecasts.loc[upper.forecasts["unique_id"] == TOTAL, ["unique_id", "ds", "y_hat", *bounds]]
    base = base.assign(method=BASE)
    if nonnegative:  # as reconcile() clips every other node's base forecast
        base[["y_hat", *bounds]] = base[["y_hat", *bounds]].clip(lower=0.0)
    tops = pd.concat([p.forecasts[p.forecasts["unique_id"] == p.top] for p in pieces], ignore_index=True)
    sums = _sum_with_quadrature(tops[tops["method"] != BASE], settings.interval_levels, nonnegative)
    final_factors = top_down.factors(base.set_index("ds")["y_hat"], tops, ["ds"])
    split = sums["method"] == TOP_DOWN
    if split.any():  # like every node under TopDown: the total's own widths around its forecast
        own = base.set_index("ds").reindex(sums.loc[split, "ds"])
        sums.loc[split, "y_hat"] *= final_factors.reindex(sums.loc[split, "ds"]).fillna(1.0).to_numpy()
        for bound in bounds:
            moved = sums.loc[split, "y_hat"].to_numpy() + (own[bound] - own["y_hat"]).to_numpy()
            sums.loc[split, bound] = moved.clip(min=0.0) if nonnegative and bound.startswith("lo_") else moved
    forecasts = pd.concat([base, sums.assign(unique_id=TOTAL)], ignore_index=True)
    forecasts = forecasts[forecasts["ds"].isin(future_periods(last, settings))]
    piece = Piece(scores, pd.DataFrame(columns=["unique_id", "cutoff", "ds", "model", "y_hat"]),
                  forecasts[["unique_id", "ds", "method", "y_hat", *bounds]], champions[["unique_id", "model"]],
                  TOTAL, decisions=decisions)
    return piece, backtest_factors, final_factors


def _sum_with_quadrature(rows: pd.DataFrame, levels: list[int], nonnegative: bool) -> pd.DataFrame:
    """Per method and period: y_hat summed; each bound y_hat -/+ the half-widths added in quadrature."""
    rows = rows.copy()
    for lv in levels:
        rows[f"_lo_{lv}"] = (rows["y_hat"] - rows[f"lo_{lv}"]) ** 2
        rows[f"_hi_{lv}"] = (rows[f"hi_{lv}"] - rows["y_hat"]) ** 2
    out = rows.groupby(["method", "ds"], as_index=False)[["y_hat", *[f"_{s}_{lv}" for lv in levels
                                                                       for s in ("lo", "hi")]]].sum()
    for lv in levels:
        out[f"lo_{lv}"] = out["y_hat"] - np.sqrt(out.pop(f"_lo_{lv}"))
        out[f"hi_{lv}"] = out["y_hat"] + np.sqrt(out.pop(f"_hi_{lv}"))
        if nonnegative:
            out[f"lo_{lv}"] = out[f"lo_{lv}"].clip(lower=0.0)
    return out


def _combine(hierarchy: Hierarchy, pieces: list[Piece], settings: Settings, candidates: list[str],
             nonnegative: bool, n_buckets: int) -> LevelResult:
    failed = {m: why for p in pieces for m, why in p.failed.items()}
    # A method a bucket could not solve is left out everywhere: its levels would not add up, nor compare.
    compared = [m for m in candidates if m not in failed]
    scores = pd.concat([p.scores for p in pieces if len(p.scores)], ignore_index=True)
    scores = scores[scores["method"].isin([BASE, *compared])]
    by_level = level_means(scores.astype({s: float for s in SCORES}), hierarchy)
    chosen, relative = choose_method(by_level, settings.selection.metric, compared, hierarchy.levels[-1])
    configured = hierarchy_settings(settings).reconciliation
    if configured == MINT_SHRINK:
        failed[MINT_SHRINK] = MINT_SHRINK_LEFT_OUT
    method = chosen if configured == "auto" else configured
    if method in failed:  # the configured method cannot be solved on this data: the plain sum instead
        method = "BottomUp"
    by_level["is_default"] = by_level["method"] == method
    champions = pd.concat([p.champions for p in pieces if len(p.champions)], ignore_index=True)
    champion = champions.set_index("unique_id")["model"]
    bounds = [f"{s}_{lv}" for lv in settings.interval_levels for s in ("lo", "hi")]
    out = pd.concat([p.forecasts for p in pieces], ignore_index=True)
    out = out[out["method"].isin([BASE, *compared])]
    # Zero in, zero out, but the non-negative solver's tolerance leaves traces of 1e-4: closed stays exactly 0.
    out = zero_closed(out, ClosedPeriods.from_settings(settings))
    out = _published(out, hierarchy, champion, method, bounds)
    bottom = set(hierarchy.bottom_ids)
    decisions: dict[str, set[str]] = {}
    for p in pieces:
        for level, decision in p.decisions.items():
            decisions.setdefault(level, set()).add(decision)
    summary = {
        "levels": hierarchy.levels,
        "nodes": hierarchy.nodes["level"].value_counts().reindex(hierarchy.levels).astype(int).to_dict(),
        "buckets": n_buckets,
        "forecast_nodes": int(scores["unique_id"].nunique()),
        "not_forecast_series": int(len(bottom) - len(bottom & set(champions["unique_id"]))),
        "method": method,
        "nonnegative": nonnegative,
        "chosen_by_backtest": chosen,
        "failed_methods": failed,
        "relative_to_bottom_up": {k: (None if pd.isna(v) else round(float(v), 4)) for k, v in relative.items()},
        "selection": {level: sorted(found) for level, found in decisions.items()},
        "models": default_models(settings),
    }
    return LevelResult(hierarchy, out, by_level, method, champions, summary)
