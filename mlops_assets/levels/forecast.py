"""One bucket of the hierarchy (a top-level group and everything below it, or the whole hierarchy when there
is no level below the total) reconciled and scored on the backtest windows, from base forecasts made elsewhere.

1. The base forecasts: the series' are the chain's (their champions' backtest rows, and what the registered
   model serves in forecasting.forecasts, calibrated intervals included); the groups' come from levels.upper
   (the product's zoo and global model on the upper nodes). A series in gold.series_excluded is not forecast
   (its base forecast is 0) but its actuals count in its parents'.
2. For every backtest window (the series' stored cutoffs), the base forecasts reconciled by every candidate
   method and each node scored (metrics.evaluate); levels.layer averages the scores per level and chooses the
   default method.
3. The final forecast: the base forecasts of the next horizon reconciled by the candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_assets.forecasting.closures import ClosedPeriods, mark_closed, zero_closed
from mlops_assets.forecasting.metrics import evaluate
from mlops_assets.forecasting.selection import choose_champions
from mlops_assets.forecasting.zoo import guard_metric, guard_windows
from mlops_assets.levels.hierarchy import Hierarchy
from mlops_assets.levels.reconcile import BASE, CANDIDATES, reconcile
from mlops_assets.settings import Settings

SCORES = ("smape", "mae", "rmse", "wape")
METHOD_ORDER = (BASE, *CANDIDATES)


@dataclass
class Piece:
    """What one bucket leaves for the whole: small tables (nodes x periods x methods), never its history."""

    scores: pd.DataFrame  # unique_id, method, smape, mae, rmse, wape, n_windows: each forecast node's backtest
    roots: pd.DataFrame  # unique_id, cutoff, ds, model, y_hat: the backtest of the bucket's top node
    forecasts: pd.DataFrame  # unique_id, ds, method, y_hat, lo_<l>, hi_<l>: every node, every method
    champions: pd.DataFrame  # unique_id, model of each forecast node
    top: str  # the bucket's top node
    failed: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)
    # unique_id, cutoff, ds, y, y_hat, closed: TopDown's backtest of every forecast node, for layer.py to scale
    # to the total's own forecast.
    top_down: pd.DataFrame = field(default_factory=pd.DataFrame)


def non_negative(has_negative_actual: bool, settings: Settings) -> bool:
    """Whether forecasts stay >= 0: the product's clip rule (settings.intervals.clip; auto: no negative actual)."""
    clip = settings.intervals.clip
    return clip == "always" or (clip == "auto" and not has_negative_actual)


def choose_by_level(backtest: pd.DataFrame, history: pd.DataFrame, hierarchy: Hierarchy,
                    settings: Settings) -> tuple[pd.DataFrame, dict[str, str]]:
    """Each node's champion by the product's selection (settings.selection), run level by level: one model for
    all the products must not decide the total's, nor the other way round."""
    sel, parts, decisions = settings.selection, [], {}
    level_of = hierarchy.nodes.set_index("unique_id")["level"]
    for level in hierarchy.levels:
        ids = level_of.index[level_of == level]
        rows = backtest[backtest["unique_id"].isin(ids)]
        if rows.empty:
            continue
        part = history[history["unique_id"].isin(ids)]
        champions, decision = choose_champions(evaluate(rows, part, settings.season), rows, part, settings.season,
                                               sel.mode, sel.global_tolerance, sel.margin, guard_windows(settings),
                                               sel.metric, guard_metric(settings))
        parts.append(champions)
        decisions[level] = decision["mode"] + (f" ({decision['champion_for_all']})"
                                               if "champion_for_all" in decision else "")
    return pd.concat(parts, ignore_index=True), decisions


def _complete(rows: pd.DataFrame, nodes: pd.Index, periods: pd.DatetimeIndex, columns: list[str]) -> pd.DataFrame:
    """``rows`` on every node x period; nodes not forecast get 0 (y_hat and bounds), others keep NaN gaps."""
    grid = pd.MultiIndex.from_product([nodes, periods], names=["unique_id", "ds"])
    out = rows.set_index(["unique_id", "ds"])[columns].reindex(grid)
    missing = ~out.index.get_level_values("unique_id").isin(rows["unique_id"].unique())
    out.loc[missing, columns] = 0.0
    return out.reset_index()


def backtest_reconciled(panel: pd.DataFrame, hierarchy: Hierarchy, base: pd.DataFrame, windows: pd.DataFrame,
                        methods: list[str], nonnegative: bool = False,
                        closed: ClosedPeriods | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per window: the base backtest forecasts reconciled; unique_id, cutoff, ds, y, model (method), y_hat,
    closed (declared closures: 0 in every base forecast, hence in every reconciled one, and not scored). And the
    methods that failed (left out of every window: they cannot be compared).

    ``base``: unique_id, cutoff, ds, y_hat of the forecast nodes; ``windows``: cutoff, ds of every window. A
    node without a row there (not forecast, or a series that lags the others' end) is 0. Every method here
    reconciles each period from its own forecasts, so all the windows' periods go through hierarchicalforecast
    in one call (each (cutoff, period) its own column).
    """
    nodes = pd.Index(hierarchy.nodes["unique_id"])
    grid = pd.MultiIndex.from_product([nodes, range(len(windows))], names=["unique_id", "slot"]).to_frame(index=False)
    slots = windows.reset_index(drop=True).rename_axis("slot").reset_index()
    grid = grid.merge(slots, on="slot")
    stacked = grid.merge(base[["unique_id", "cutoff", "ds", "y_hat"]], on=["unique_id", "cutoff", "ds"], how="left")
    stacked["y_hat"] = stacked["y_hat"].fillna(0.0)
    stacked["slot"] = pd.Timestamp("2000-01-03") + pd.to_timedelta(stacked["slot"], unit="D")
    done = reconcile(stacked[["unique_id", "slot", "y_hat"]].rename(columns={"slot": "ds"}), None, hierarchy,
                     methods, nonnegative=nonnegative)
    failed = {m: f"backtest: {why}" for m, why in done.failed.items()}
    slots["slot"] = pd.Timestamp("2000-01-03") + pd.to_timedelta(slots["slot"], unit="D")
    out = done.forecasts.rename(columns={"ds": "slot"}).merge(slots, on="slot").drop(columns="slot")
    out = out.rename(columns={"method": "model"})
    actual = panel.set_index(["unique_id", "ds"])["y"]
    keys = pd.MultiIndex.from_arrays([out["unique_id"], out["ds"]])
    out["y"] = actual.reindex(keys).fillna(0.0).to_numpy()
    out = out[["unique_id", "cutoff", "ds", "y", "model", "y_hat"]]
    out = out[~out["model"].isin(list(failed))].sort_values(["unique_id", "model", "cutoff", "ds"], kind="stable")
    return mark_closed(out.reset_index(drop=True), closed or ClosedPeriods.of()), failed


def node_scores(reconciled: pd.DataFrame, panel: pd.DataFrame, scored: list[str], season: int) -> pd.DataFrame:
    """Each scored node's backtest scores per method (mean over the windows)."""
    rows = reconciled[reconciled["unique_id"].isin(scored)]
    per_node = evaluate(rows, panel, season).rename(columns={"model": "method"})
    return per_node[["unique_id", "method", *SCORES, "n_windows"]]


def level_means(scores: pd.DataFrame, hierarchy: Hierarchy) -> pd.DataFrame:
    """Per level and method: the mean over the level's scored nodes of each node's backtest scores."""
    per_node = scores.merge(hierarchy.nodes, on="unique_id")
    out = per_node.groupby(["level", "method"], sort=False).agg(
        **{s: (s, "mean") for s in SCORES}, n_series=("unique_id", "nunique"), n_windows=("n_windows", "max"))
    out = out.reset_index()
    order = {name: i for i, name in enumerate(hierarchy.levels)}
    out["_l"] = out["level"].map(order)
    return out.sort_values(["_l", "method"], kind="stable").drop(columns="_l").reset_index(drop=True)


# How much worse than BottomUp a method may do at the series' own level, on the backtest, and still be chosen:
# reconciliation is for the levels above; the series' forecasts are what the registered model serves.
BOTTOM_TOLERANCE = 0.01


def choose_method(evaluation: pd.DataFrame, metric: str, candidates: list[str], bottom_level: str,
                  bottom_tolerance: float = BOTTOM_TOLERANCE) -> tuple[str, pd.Series]:
    """The candidate whose ``metric`` relative to BottomUp's, averaged over the levels, is lowest, among those
    within ``bottom_tolerance`` of BottomUp at ``bottom_level`` (ties: BottomUp). Also every candidate's mean."""
    table = evaluation.pivot(index="level", columns="method", values=metric)
    relative = table[candidates].div(table["BottomUp"], axis=0).replace([np.inf, -np.inf], np.nan)
    means = relative.mean().reindex(candidates)
    bottom = relative.loc[bottom_level] if bottom_level in relative.index else pd.Series(1.0, index=candidates)
    allowed = means[(bottom <= 1 + bottom_tolerance + 1e-12) | (means.index == "BottomUp")]
    best = allowed.round(9).idxmin() if allowed.notna().any() else "BottomUp"
    return str(best), means


def _published(out: pd.DataFrame, hierarchy: Hierarchy, champion: pd.Series, method: str,
               bounds: list[str]) -> pd.DataFrame:
    """The forecasts_by_level table: level and base model added, sorted by node (top first), method, period."""
    out = out.merge(hierarchy.nodes, on="unique_id")
    out["base_model"] = champion.reindex(out["unique_id"]).fillna("not forecast").to_numpy()
    out["is_default"] = out["method"] == method
    out["_n"] = pd.Index(hierarchy.nodes["unique_id"]).get_indexer(out["unique_id"])
    out["_m"] = out["method"].map({m: i for i, m in enumerate(METHOD_ORDER)})
    out = out.sort_values(["_n", "_m", "ds"], kind="stable").drop(columns=["_n", "_m"]).reset_index(drop=True)
    return out[["level", "unique_id", "ds", "method", "y_hat", *bounds, "base_model", "is_default"]]


def future_periods(last: pd.Timestamp, settings: Settings) -> pd.DatetimeIndex:
    return pd.date_range(last, periods=settings.horizon + 1, freq=settings.frequency)[1:]


def reconcile_piece(panel: pd.DataFrame, hierarchy: Hierarchy, backtest: pd.DataFrame, forecasts: pd.DataFrame,
                    windows: pd.DataFrame, scored: list[str], last: pd.Timestamp, settings: Settings,
                    candidates: list[str], nonnegative: bool) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """One bucket reconciled: ``panel`` (hierarchy.aggregate) of the nodes of ``hierarchy`` (top first), the
    base ``backtest`` rows (unique_id, cutoff, ds, y_hat) on ``windows`` and the base ``forecasts`` (unique_id,
    ds, y_hat, bounds) of the forecast nodes. Returns the reconciled backtest of the ``scored`` nodes (Base
    included), every node's final forecasts by every method, and the methods that failed. A node without a
    base forecast is 0 at every method (its actuals still count in the levels above)."""
    bounds = [f"{s}_{lv}" for lv in settings.interval_levels for s in ("lo", "hi")]
    all_nodes = pd.Index(hierarchy.nodes["unique_id"])
    closed = ClosedPeriods.from_settings(settings)
    reconciled, failed = backtest_reconciled(panel, hierarchy, backtest, windows, candidates, nonnegative, closed)
    reconciled = reconciled[reconciled["unique_id"].isin(scored)].reset_index(drop=True)
    complete = _complete(zero_closed(forecasts[["unique_id", "ds", "y_hat", *bounds]], closed), all_nodes,
                         future_periods(last, settings), ["y_hat", *bounds]).fillna(0.0)
    done = reconcile(complete, None, hierarchy, candidates, list(settings.interval_levels), nonnegative)
    failed.update({m: f"final forecast: {why}" for m, why in done.failed.items()})
    return reconciled, done.forecasts, failed
