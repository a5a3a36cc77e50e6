"""The per-series combination: the median of the forecasts of the series' best few models, as one candidate.

Which models: the ``size`` with the lowest mean score on the series' backtest windows, on the selection
metric (settings.selection.metric; declared-closed periods are not scored); the median (not the
mean) so that one model gone astray does not drag the combination. In the backtest, each window's
combination uses only the windows before it to choose its members (the first window, which has none, takes
the median of every model), so its score is out of sample like every other model's and the selection
guard can compare it fairly. The champion model's combination uses all windows.
"""

from __future__ import annotations

import pandas as pd

from mlops_assets.forecasting.metrics import check_metric, window_metrics
from mlops_assets.forecasting.selection import complexity_rank
from mlops_assets.forecasting.zoo import COMBINATION


def _window_scores(backtest: pd.DataFrame, metric: str, history: pd.DataFrame | None,
                   season_length: int) -> pd.DataFrame:
    """unique_id, model, cutoff, score: each window's ``metric`` (NaN when a forecast of the window is NaN)."""
    if check_metric(metric) == "mase" and history is None:
        raise ValueError("ranking combination members on MASE needs the history (its scale)")
    if history is None:
        history = backtest[["unique_id", "ds", "y"]].iloc[:0]
    scores = window_metrics(backtest, history, season_length)
    return scores[["unique_id", "model", "cutoff"]].assign(score=scores[metric])


def choose_members(window_scores: pd.DataFrame, size: int) -> pd.DataFrame:
    """unique_id, model: each series' ``size`` models with the lowest mean score (ties: the simpler one)."""
    # Windows without a score are skipped, not counted against the model.
    means = window_scores.groupby(["unique_id", "model"], sort=True)["score"].mean().reset_index()
    means = means[means["score"].notna()]
    means["_rank"] = complexity_rank(means["model"])
    means = means.sort_values(["unique_id", "score", "_rank"], kind="stable")
    return means.groupby("unique_id", sort=True).head(size)[["unique_id", "model"]].reset_index(drop=True)


def combine_backtest(backtest: pd.DataFrame, size: int = 3, metric: str = "smape",
                     history: pd.DataFrame | None = None, season_length: int = 1) -> pd.DataFrame:
    """The combination's backtest rows (unique_id, cutoff, ds, y, model, y_hat), members chosen per window
    on the windows before it, on ``metric`` (MASE needs the ``history`` and ``season_length`` of its scale).
    A ``closed`` column is carried over."""
    bt = backtest[backtest["model"] != COMBINATION].astype({"unique_id": str})
    scores = _window_scores(bt, metric, history, season_length)
    parts = []
    for cutoff in sorted(bt["cutoff"].unique()):
        rows = bt[bt["cutoff"] == cutoff]
        earlier = scores[scores["cutoff"] < cutoff]
        if not earlier.empty:
            members = choose_members(earlier, size)
            chosen = rows.merge(members, on=["unique_id", "model"], how="inner")
            # Series without an earlier window (shorter ones) take the median of every model, as the first does.
            rows = pd.concat([chosen, rows[~rows["unique_id"].isin(members["unique_id"])]])
        extra = {"closed": ("closed", "first")} if "closed" in rows.columns else {}
        parts.append(rows.groupby(["unique_id", "cutoff", "ds"], sort=False).agg(y=("y", "first"),
                                                                                  y_hat=("y_hat", "median"), **extra))
    out = pd.concat(parts).reset_index().assign(model=COMBINATION)
    out = out[["unique_id", "cutoff", "ds", "y", "model", "y_hat"] + (["closed"] if "closed" in bt.columns else [])]
    return out.sort_values(["unique_id", "cutoff", "ds"], kind="stable").reset_index(drop=True)


def final_members(backtest: pd.DataFrame, size: int = 3, metric: str = "smape",
                  history: pd.DataFrame | None = None, season_length: int = 1) -> pd.DataFrame:
    """unique_id, model: the members of each series' combination, chosen on all backtest windows."""
    bt = backtest[backtest["model"] != COMBINATION].astype({"unique_id": str})
    return choose_members(_window_scores(bt, metric, history, season_length), size)
