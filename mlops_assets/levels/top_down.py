"""TopDown over the whole hierarchy, from buckets that each split their own top node.

hierarchicalforecast's TopDown(forecast_proportions) splits each period's forecast of a parent among its
children in the proportions of their own forecasts. Within a bucket it splits the category's forecast; over the
whole tree the category's share of the total's forecast would be split instead. Both differ by one factor per
period, the same for every node below the total: the total's own forecast over the sum of the categories' own
forecasts. So the buckets' TopDown rows are scaled by it, their bounds keeping their widths, and the result is
what hierarchicalforecast gives on the whole tree. Where the categories' forecasts sum to 0 the factor is 1: the
total is then the sum of the buckets' (hierarchicalforecast would split it equally among the categories).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from mlops_assets.levels.forecast import Piece, node_scores
from mlops_assets.levels.reconcile import BASE, TOP_DOWN

NO_HISTORY = pd.DataFrame({"unique_id": pd.Series([], dtype=str), "ds": pd.Series([], dtype="datetime64[ns]"),
                           "y": pd.Series([], dtype=float)})


def factors(total: pd.Series, tops: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Per ``keys`` (ds, or cutoff and ds): the total's own forecast over the sum of the buckets' tops' own."""
    denominator = tops[tops["method" if "method" in tops else "model"] == BASE].groupby(keys)["y_hat"].sum()
    ratio = total.reindex(denominator.index) / denominator
    return ratio.where(denominator.abs() > 1e-8, 1.0).fillna(1.0)


def scaled(piece: Piece, backtest: pd.Series, final: pd.Series, bounds: list[str], nonnegative: bool,
           season: int) -> Piece:
    """The bucket with its TopDown rows (forecasts and backtest) scaled to the total's, its TopDown scores
    recomputed from the scaled backtest."""
    if piece.top_down.empty:
        return piece
    rows = piece.top_down.copy()
    rows["y_hat"] *= backtest.reindex(pd.MultiIndex.from_frame(rows[["cutoff", "ds"]])).fillna(1.0).to_numpy()
    scores = node_scores(rows.assign(model=TOP_DOWN), NO_HISTORY, rows["unique_id"].unique().tolist(), season)
    forecasts = piece.forecasts.copy()
    mask = forecasts["method"] == TOP_DOWN
    before = forecasts.loc[mask, "y_hat"].to_numpy()
    after = before * final.reindex(forecasts.loc[mask, "ds"]).fillna(1.0).to_numpy()
    forecasts.loc[mask, "y_hat"] = after
    for bound in bounds:
        moved = forecasts.loc[mask, bound].to_numpy() + (after - before)
        forecasts.loc[mask, bound] = moved.clip(min=0.0) if nonnegative and bound.startswith("lo_") else moved
    return replace(piece, forecasts=forecasts, scores=pd.concat([piece.scores[piece.scores["method"] != TOP_DOWN],
                                                                  scores], ignore_index=True))
