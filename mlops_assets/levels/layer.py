"""The whole levels layer on a stored gold table, one bucket of the hierarchy at a time.

A bucket is a group of the first level below the total (a category) with everything below it: for BottomUp and
MinTrace within it, a category and its brands and products are independent of the other categories, so each is
read from DuckDB (its series only, aggregated there), forecast, reconciled and scored on its own, and only its
small results are kept. The total is then forecast from the categories' sums alone (DuckDB sums every series
per period); every reconciled method's total is the sum of its reconciled categories, its interval the
categories' half-widths added in quadrature (as independent normals, as hierarchicalforecast's BottomUp does).
So MinTrace weighs the levels from the category down, never the total against the categories; TopDown is
scaled to the total's own forecast afterwards, which makes it exactly the whole tree's TopDown (top_down.py).
A hierarchy
with no level below the total (a series file's total alone) is one bucket, reconciled whole.

The buckets run on the engine of settings.compute (forecasting/engine.py: a local process pool or Dask, with
its retries): the parent sums one bucket at a time in DuckDB into a Parquet input under ``folder``, and each
task reads its input, forecasts with one process (StatsForecast n_jobs=1) and returns its small results.

``hierarchy.reconciliation: auto`` takes the method whose scores, relative to BottomUp's level by level and
averaged over the levels, are lowest, among the methods no more than 1% worse than BottomUp at the series' own
level: chosen on the backtest windows, never on a holdout. Ties go to BottomUp.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from mlops_assets.forecasting.backtest import validate_history
from mlops_assets.forecasting.closures import ClosedPeriods, zero_closed
from mlops_assets.forecasting.engine import ModelGroup, input_path, open_engine, run_tasks
from mlops_assets.levels import top_down
from mlops_assets.levels.forecast import (
    SCORES,
    Piece,
    _published,
    backtest_nodes,
    choose_by_level,
    choose_method,
    final_forecasts,
    forecast_piece,
    future_periods,
    level_means,
    level_models,
    node_scores,
    non_negative,
)
from mlops_assets.levels.hierarchy import (
    TOTAL,
    Hierarchy,
    aggregate,
    build_hierarchy,
    hierarchy_settings,
    series_attributes,
    total_history,
)
from mlops_assets.levels.reconcile import BASE, CANDIDATES, TOP_DOWN
from mlops_assets.settings import Settings
from mlops_assets.warehouse import Connect, write_part

GOLD = "gold.sales_data_for_forecast"
EXCLUDED = "gold.series_excluded"


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


@dataclass(frozen=True)
class PieceReport:
    """A bucket's forecast pieces, as the engine reports a task (by group and part)."""

    group: int
    piece: Piece
    part: str = ""


@dataclass(frozen=True)
class PieceTask:
    """One bucket on the engine: its aggregated history from ``folder``'s input, forecast by one process."""

    folder: Path
    parts: dict[int, Hierarchy]
    excluded: frozenset[str]
    last: pd.Timestamp
    settings: Settings
    candidates: tuple[str, ...]
    nonnegative: bool

    def __call__(self, bucket: ModelGroup) -> PieceReport:
        panel = pd.read_parquet(input_path(self.folder, bucket))
        piece = forecast_piece(panel, self.parts[bucket.index], set(self.excluded), self.last, self.settings,
                               list(self.candidates), self.nonnegative, n_jobs=1)
        return PieceReport(bucket.index, piece)


def forecast_levels(connect: Connect, settings: Settings, gold: str = GOLD, excluded_table: str = EXCLUDED,
                    folder: Path | None = None, log: Callable[[str], None] | None = None) -> LevelResult:
    """The layer on the stored ``gold`` (every series, excluded ones too) and the ids ``excluded_table`` lists.

    ``folder``: scratch space for the buckets' inputs, reachable by every worker (removed when done; default a
    temporary folder, enough for the local engine)."""
    with connect() as con:
        attributes = series_attributes(con, gold, settings)
        excluded = {uid for (uid,) in con.execute(f"select unique_id::varchar from {excluded_table}").fetchall()}
        negative, last = con.execute(f"select count(*) filter (where y < 0) > 0, max(ds) from {gold}").fetchall()[0]
    last = pd.Timestamp(last)
    hierarchy = build_hierarchy(attributes, settings)
    if not set(hierarchy.bottom_ids) - excluded:
        raise ValueError(f"levels: no series of {gold} is forecast (all are in {excluded_table}); see its reasons")
    nonnegative = non_negative(negative, settings)
    candidates = list(CANDIDATES)
    tops = buckets(hierarchy)
    scratch = Path(tempfile.mkdtemp(prefix="levels-")) if folder is None else folder
    try:
        parts, planned = {}, []
        for k, top in enumerate(tops):
            parts[k] = hierarchy.below(top)
            with connect() as con:
                panel = aggregate(con, gold, parts[k], settings.frequency)
            bucket = ModelGroup(k, tuple(parts[k].bottom_ids), float(len(panel)))
            write_part(panel, input_path(scratch, bucket))
            planned.append(bucket)
            del panel
        task = PieceTask(scratch, parts, frozenset(excluded), last, settings, tuple(candidates), nonnegative)
        with open_engine(settings.compute) as engine:
            reports = run_tasks(engine, task, planned, retries=settings.compute.retries,
                                  on_progress=(lambda p: log(f"levels: {p.message}")) if log else lambda _p: None)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    pieces = [r.piece for r in reports]
    if tops != [TOTAL]:
        with connect() as con:
            total = total_history(con, gold, settings.frequency)
        top, backtest_factors, final_factors = forecast_total(total, pieces, last, settings, candidates,
                                                              nonnegative)
        bounds = [f"{s}_{lv}" for lv in settings.interval_levels for s in ("lo", "hi")]
        pieces = [top_down.scaled(p, backtest_factors, final_factors, bounds, nonnegative, settings.season)
                  for p in pieces] + [top]
    return _combine(hierarchy, pieces, settings, candidates, nonnegative, len(tops))


def forecast_total(total: pd.DataFrame, pieces: list[Piece], last: pd.Timestamp, settings: Settings,
                   candidates: list[str], nonnegative: bool,
                   n_jobs: int = 1) -> tuple[Piece, pd.Series, pd.Series]:
    """The total: Base its own champion on its own history; each reconciled method the sum of the buckets',
    TopDown's scaled to the total's own forecast (top_down.py). Also TopDown's factors per window and period
    and per future period."""
    tree = Hierarchy([TOTAL], pd.DataFrame({"unique_id": [TOTAL], "level": [TOTAL]}),
                     pd.DataFrame({"node": [TOTAL], "unique_id": [TOTAL]}))
    history = validate_history(total, settings.min_series_length, "levels' total")
    names = level_models(settings)
    backtest, _ = backtest_nodes(history, settings, names, n_jobs)
    champions, decisions = choose_by_level(backtest, history, tree, settings)
    model = champions["model"].iloc[0]
    base_rows = backtest.loc[backtest["model"] == model, ["unique_id", "cutoff", "ds", "y", "y_hat", "closed"]]
    roots = pd.concat([p.roots for p in pieces], ignore_index=True)
    summed = (roots[roots["model"] != BASE].groupby(["model", "cutoff", "ds"], as_index=False)["y_hat"].sum()
              .merge(base_rows[["cutoff", "ds", "y", "closed"]], on=["cutoff", "ds"]))
    backtest_factors = top_down.factors(base_rows.set_index(["cutoff", "ds"])["y_hat"], roots, ["cutoff", "ds"])
    split = summed["model"] == TOP_DOWN
    summed.loc[split, "y_hat"] *= backtest_factors.reindex(
        pd.MultiIndex.from_frame(summed.loc[split, ["cutoff", "ds"]])).fillna(1.0).to_numpy()
    rows = pd.concat([base_rows.assign(model=BASE), summed.assign(unique_id=TOTAL)], ignore_index=True)
    scores = node_scores(rows, history, [TOTAL], settings.season)

    base, _ = final_forecasts(history, champions.set_index("unique_id")["model"], settings, n_jobs)
    bounds = [f"{s}_{lv}" for lv in settings.interval_levels for s in ("lo", "hi")]
    closed = ClosedPeriods.from_settings(settings)
    base = zero_closed(base, closed).assign(method=BASE).drop(columns="base_model")
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
        "models": level_models(settings),
    }
    return LevelResult(hierarchy, out, by_level, method, champions, summary)


def in_memory(gold: pd.DataFrame, excluded: set[str] | list[str] = ()) -> Connect:
    """A Connect to an in-memory DuckDB holding ``gold`` and the excluded ids under the warehouse's names, for
    the layer run on frames (tests, benchmarks)."""
    con = duckdb.connect()
    con.execute("create schema gold")
    con.register("_gold", gold)
    con.execute(f"create table {GOLD} as select * from _gold")
    con.unregister("_gold")
    con.register("_excluded", pd.DataFrame({"unique_id": sorted(map(str, excluded))}, dtype=object))
    con.execute(f"create table {EXCLUDED} as select unique_id::varchar as unique_id from _excluded")
    con.unregister("_excluded")

    @contextmanager
    def connect() -> Iterator[duckdb.DuckDBPyConnection]:
        cursor = con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    return connect
