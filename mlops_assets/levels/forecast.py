"""One bucket of the hierarchy (a top-level group and everything below it, or the whole hierarchy when there
is no level below the total) forecast by the product's zoo, reconciled, and scored on the backtest windows.

1. A node is forecast when at least one series below it is: a series in gold.series_excluded, or one whose
   last period lags the end of the data, is not (its base forecast is 0, as the product does not forecast it)
   but its actuals count in its parents'.
2. The zoo's StatsForecast models (zoo.default_models without LightGBM and Combination, which need the bucket
   machinery of the bottom forecasts) backtested on every forecast node in one cross-validation call, with
   in-sample fitted values per window; each node's champion chosen by the product's selection
   (selection.choose_champions, settings.selection), level by level within the bucket.
3. For every backtest window, the champions' forecasts reconciled by every candidate method and each node
   scored (metrics.evaluate); levels.layer averages the scores per level and chooses the default method.
4. The final forecast: each node's champion refitted on its whole history (with its intervals and fitted
   values), reconciled by the candidates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_assets.forecasting.backtest import to_long, validate_history
from mlops_assets.forecasting.closures import ClosedPeriods, mark_closed, zero_closed
from mlops_assets.forecasting.metrics import evaluate
from mlops_assets.forecasting.parallel import CleanWorkerStatsForecast as StatsForecast
from mlops_assets.forecasting.selection import choose_champions
from mlops_assets.forecasting.zoo import (
    CONFORMAL_WINDOWS,
    STATSFORECAST_NAMES,
    build_fallback,
    build_models,
    default_models,
    guard_metric,
    guard_windows,
    has_native_intervals,
)
from mlops_assets.levels.hierarchy import Hierarchy
from mlops_assets.levels.reconcile import BASE, CANDIDATES, PER_PERIOD, TOP_DOWN, reconcile
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


def level_models(settings: Settings) -> list[str]:
    return [name for name in default_models(settings) if name in STATSFORECAST_NAMES]


def non_negative(has_negative_actual: bool, settings: Settings) -> bool:
    """Whether forecasts stay >= 0: the product's clip rule (settings.intervals.clip; auto: no negative actual)."""
    clip = settings.intervals.clip
    return clip == "always" or (clip == "auto" and not has_negative_actual)


def forecast_nodes(panel: pd.DataFrame, hierarchy: Hierarchy, excluded: set[str], last: pd.Timestamp) -> list[str]:
    """Nodes with at least one series below them that the product forecasts and that reaches ``last``, the
    end of the data."""
    end = panel.groupby("unique_id")["ds"].max()
    bottom = hierarchy.membership[hierarchy.membership["node"] == hierarchy.membership["unique_id"]]["unique_id"]
    forecast = {uid for uid in bottom if uid not in excluded and end.get(uid) == last}
    members = hierarchy.membership[hierarchy.membership["unique_id"].isin(forecast)]
    keep = set(members["node"])
    return [uid for uid in hierarchy.nodes["unique_id"] if uid in keep]


def _statsforecast(names: list[str], settings: Settings, conformal_windows: int | None, n_jobs: int) -> StatsForecast:
    return StatsForecast(models=build_models(names, settings.season, settings.horizon, conformal_windows),
                         freq=settings.frequency, n_jobs=n_jobs,
                         fallback_model=build_fallback(settings.season, settings.horizon))


def backtest_nodes(history: pd.DataFrame, settings: Settings, names: list[str],
                   n_jobs: int = -1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The zoo's cross-validation of the nodes: long backtest rows, and long fitted values per window."""
    sf = _statsforecast(names, settings, None, n_jobs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Historical data .* shorter than season_length")
        warnings.filterwarnings("ignore", message="Computing fitted values for .* is very expensive")
        cv = sf.cross_validation(df=history, h=settings.horizon, n_windows=settings.backtest.windows,
                                 step_size=settings.step, fitted=True)
        fitted = sf.cross_validation_fitted_values()
    fitted = fitted.melt(id_vars=["unique_id", "ds", "cutoff", "y"], value_vars=sorted(names), var_name="model",
                         value_name="y_hat")
    return mark_closed(to_long(cv, names), ClosedPeriods.from_settings(settings)), fitted.astype({"unique_id": str})


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


def _pick(frame: pd.DataFrame, champions: pd.Series) -> pd.DataFrame:
    """The rows of each node's champion model."""
    return frame[frame["model"].to_numpy() == champions.reindex(frame["unique_id"]).to_numpy()]


def _complete(rows: pd.DataFrame, nodes: pd.Index, periods: pd.DatetimeIndex, columns: list[str]) -> pd.DataFrame:
    """``rows`` on every node x period; nodes not forecast get 0 (y_hat and bounds), others keep NaN gaps."""
    grid = pd.MultiIndex.from_product([nodes, periods], names=["unique_id", "ds"])
    out = rows.set_index(["unique_id", "ds"])[columns].reindex(grid)
    missing = ~out.index.get_level_values("unique_id").isin(rows["unique_id"].unique())
    out.loc[missing, columns] = 0.0
    return out.reset_index()


def _insample(panel: pd.DataFrame, fitted: pd.DataFrame, nodes: pd.Index, until: pd.Timestamp) -> pd.DataFrame:
    """unique_id, ds, y, y_hat up to ``until`` on the node x period grid: y 0 before a node exists."""
    periods = pd.DatetimeIndex(sorted(panel.loc[panel["ds"] <= until, "ds"].unique()))
    y = _complete(panel[panel["ds"] <= until], nodes, periods, ["y"])
    y["y"] = y["y"].fillna(0.0)
    y_hat = _complete(fitted[["unique_id", "ds", "y_hat"]], nodes, periods, ["y_hat"])
    return y.merge(y_hat, on=["unique_id", "ds"], how="left")


def backtest_reconciled(panel: pd.DataFrame, hierarchy: Hierarchy, backtest: pd.DataFrame, fitted: pd.DataFrame,
                        champions: pd.Series, methods: list[str], nonnegative: bool = False,
                        closed: ClosedPeriods | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per window: the champions' backtest forecasts reconciled; unique_id, cutoff, ds, y, model (method), y_hat,
    closed (declared closures: 0 in every base forecast, hence in every reconciled one, and not scored). And the
    methods that failed in some window (left out of every window: they cannot be compared).

    The PER_PERIOD methods reconcile each period from its own forecasts, so every window's periods go through
    hierarchicalforecast in one call (each (cutoff, period) its own column); a method that weighs by the
    in-sample errors (mint_shrink) is reconciled window by window on the fitted values up to its cutoff.
    """
    nodes = pd.Index(hierarchy.nodes["unique_id"])
    chosen, chosen_fit = _pick(backtest, champions), _pick(fitted, champions)
    actual = panel.set_index(["unique_id", "ds"])["y"]
    windows = {cutoff: _complete(window[["unique_id", "ds", "y_hat"]], nodes,
                                 pd.DatetimeIndex(sorted(window["ds"].unique())), ["y_hat"]).assign(cutoff=cutoff)
               for cutoff, window in chosen.groupby("cutoff", sort=True)}
    stacked = pd.concat(windows.values(), ignore_index=True)
    slots = stacked[["cutoff", "ds"]].drop_duplicates().sort_values(["cutoff", "ds"]).reset_index(drop=True)
    slots["slot"] = pd.date_range("2000-01-03", periods=len(slots), freq="D")
    stacked = stacked.merge(slots, on=["cutoff", "ds"])
    per_period = [m for m in methods if m in PER_PERIOD]
    done = reconcile(stacked[["unique_id", "slot", "y_hat"]].rename(columns={"slot": "ds"}), None, hierarchy,
                     per_period, nonnegative=nonnegative)
    failed = {m: f"backtest: {why}" for m, why in done.failed.items()}
    parts = [done.forecasts.rename(columns={"ds": "slot"}).merge(slots, on="slot").drop(columns="slot")]
    for cutoff, base in windows.items():
        weighed = [m for m in methods if m not in PER_PERIOD]
        if not weighed:
            break
        insample = _insample(panel, chosen_fit[chosen_fit["cutoff"] == cutoff], nodes, pd.Timestamp(cutoff))
        done = reconcile(base.drop(columns="cutoff"), insample, hierarchy, weighed, nonnegative=nonnegative)
        failed.update({m: f"window {pd.Timestamp(cutoff).date()}: {why}" for m, why in done.failed.items()})
        parts.append(done.forecasts[done.forecasts["method"] != BASE].assign(cutoff=cutoff))
    out = pd.concat(parts, ignore_index=True).rename(columns={"method": "model"})
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


def final_forecasts(panel: pd.DataFrame, champions: pd.Series, settings: Settings,
                    n_jobs: int = -1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each node's champion refitted on its whole history: forecasts (y_hat, lo_l, hi_l) and fitted values."""
    levels = list(settings.interval_levels)
    lengths = panel.groupby("unique_id").size()
    forecasts, fitted = [], []
    for model, ids in champions.groupby(champions, sort=True):
        ids = ids.index
        windows = None
        if not has_native_intervals(model):
            windows = min(CONFORMAL_WINDOWS, int((lengths.reindex(ids).min() - 1) // settings.horizon))
            if windows < 2:  # too short for conformal intervals: the fallback model has native ones
                model, windows = build_fallback(1, 1).alias, None
        sf = _statsforecast([model], settings, windows, n_jobs)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Historical data .* shorter than season_length")
            warnings.filterwarnings("ignore", message="Computing fitted values for .* is very expensive")
            out = sf.forecast(df=panel[panel["unique_id"].isin(ids)], h=settings.horizon, level=levels, fitted=True)
            fit = sf.forecast_fitted_values()
        out = out.rename(columns={model: "y_hat", **{f"{model}-{s}-{lv}": f"{s}_{lv}" for lv in levels
                                                    for s in ("lo", "hi")}})
        forecasts.append(out[["unique_id", "ds", "y_hat", *[f"{s}_{lv}" for lv in levels for s in ("lo", "hi")]]]
                         .assign(base_model=model))
        fitted.append(fit[["unique_id", "ds", "y", model]].rename(columns={model: "y_hat"}))
    return (pd.concat(forecasts, ignore_index=True).astype({"unique_id": str}),
            pd.concat(fitted, ignore_index=True).astype({"unique_id": str}))


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


def forecast_piece(panel: pd.DataFrame, hierarchy: Hierarchy, excluded: set[str], last: pd.Timestamp,
                   settings: Settings, candidates: list[str], nonnegative: bool, n_jobs: int = -1) -> Piece:
    """One bucket: ``panel`` (hierarchy.aggregate) of the nodes of ``hierarchy`` (top first), backtested,
    reconciled per window and scored, then forecast and reconciled. A bucket none of whose series is forecast
    gets 0 at every node and method (its actuals still count in the levels above)."""
    bounds = [f"{s}_{lv}" for lv in settings.interval_levels for s in ("lo", "hi")]
    all_nodes = pd.Index(hierarchy.nodes["unique_id"])
    nodes = forecast_nodes(panel, hierarchy, excluded, last)
    if not nodes:
        grid = pd.MultiIndex.from_product([all_nodes, future_periods(last, settings), METHOD_ORDER],
                                          names=["unique_id", "ds", "method"]).to_frame(index=False)
        zeros = grid.assign(y_hat=0.0, **{b: 0.0 for b in bounds})
        return Piece(pd.DataFrame(columns=["unique_id", "method", *SCORES, "n_windows"]),
                     pd.DataFrame(columns=["unique_id", "cutoff", "ds", "model", "y_hat"]), zeros,
                     pd.DataFrame(columns=["unique_id", "model"]), hierarchy.nodes["unique_id"].iloc[0])
    history = validate_history(panel[panel["unique_id"].isin(nodes)], settings.min_series_length, "levels' history")
    names = level_models(settings)
    backtest, fitted = backtest_nodes(history, settings, names, n_jobs)
    champions, decisions = choose_by_level(backtest, history, hierarchy, settings)
    champion = champions.set_index("unique_id")["model"]
    closed = ClosedPeriods.from_settings(settings)
    reconciled, failed = backtest_reconciled(panel, hierarchy, backtest, fitted, champion, candidates, nonnegative,
                                             closed)
    scores = node_scores(reconciled, panel, nodes, settings.season)
    top = hierarchy.nodes.loc[hierarchy.nodes["level"] == hierarchy.levels[0], "unique_id"]
    roots = reconciled.loc[reconciled["unique_id"].isin(top), ["unique_id", "cutoff", "ds", "model", "y_hat"]]

    base, insample_fit = final_forecasts(history, champion, settings, n_jobs)
    complete = _complete(zero_closed(base[["unique_id", "ds", "y_hat", *bounds]], closed), all_nodes,
                         future_periods(last, settings), ["y_hat", *bounds])
    insample = _insample(panel, insample_fit, all_nodes, panel["ds"].max())
    done = reconcile(complete, insample, hierarchy, candidates, list(settings.interval_levels), nonnegative)
    failed.update({m: f"final forecast: {why}" for m, why in done.failed.items()})
    top_down = reconciled.loc[(reconciled["model"] == TOP_DOWN) & reconciled["unique_id"].isin(nodes),
                              ["unique_id", "cutoff", "ds", "y", "y_hat", "closed"]]
    return Piece(scores, roots.reset_index(drop=True), done.forecasts, champions[["unique_id", "model"]],
                 top.iloc[0], failed, decisions, top_down.reset_index(drop=True))
