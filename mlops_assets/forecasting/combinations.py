"""The per-series combination: the median of the forecasts of the series' best few models, as one candidate.

Which models: the ``size`` with the lowest mean SMAPE on the series' backtest windows; the median (not the
mean) so that one model gone astray does not drag the combination. In the backtest, each window's
combination uses only the windows before it to choose its members (the first window, which has none, takes
the median of every model), so its score is out of sample like every other model's and the selection
guard can compare it fairly. The champion model's combination uses all windows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_assets.forecasting.metrics import smape_terms
from mlops_assets.forecasting.selection import complexity_rank
from mlops_assets.forecasting.zoo import COMBINATION


def _window_smape(backtest: pd.DataFrame) -> pd.DataFrame:
    """unique_id, model, cutoff, smape of every window (NaN when a forecast of the window is NaN)."""
    terms = smape_terms(backtest["y"].to_numpy(dtype=float), backtest["y_hat"].to_numpy(dtype=float))
    frame = backtest[["unique_id", "model", "cutoff"]].assign(smape=terms)
    return frame.groupby(["unique_id", "model", "cutoff"], sort=True)["smape"].agg(
        lambda v: v.mean() if v.notna().all() else np.nan
    ).reset_index()


def choose_members(window_smape: pd.DataFrame, size: int) -> pd.DataFrame:
    """unique_id, model: each series' ``size`` models with the lowest mean SMAPE (ties: the simpler one)."""
    means = window_smape.groupby(["unique_id", "model"], sort=True)["smape"].mean().reset_index()
    means = means[means["smape"].notna()]
    means["_rank"] = complexity_rank(means["model"])
    means = means.sort_values(["unique_id", "smape", "_rank"], kind="stable")
    return means.groupby("unique_id", sort=True).head(size)[["unique_id", "model"]].reset_index(drop=True)


def combine_backtest(backtest: pd.DataFrame, size: int = 3) -> pd.DataFrame:
    """The combination's backtest rows (unique_id, cutoff, ds, y, model, y_hat), members chosen per window
    on the windows before it."""
    bt = backtest[backtest["model"] != COMBINATION].astype({"unique_id": str})
    scores = _window_smape(bt)
    parts = []
    for cutoff in sorted(bt["cutoff"].unique()):
        rows = bt[bt["cutoff"] == cutoff]
        earlier = scores[scores["cutoff"] < cutoff]
        if not earlier.empty:
            members = choose_members(earlier, size)
            chosen = rows.merge(members, on=["unique_id", "model"], how="inner")
            # Series without an earlier window (shorter ones) take the median of every model, as the first does.
            rows = pd.concat([chosen, rows[~rows["unique_id"].isin(members["unique_id"])]])
        parts.append(rows.groupby(["unique_id", "cutoff", "ds"], sort=False).agg(y=("y", "first"),
                                                                                  y_hat=("y_hat", "median")))
    out = pd.concat(parts).reset_index().assign(model=COMBINATION)
    out = out[["unique_id", "cutoff", "ds", "y", "model", "y_hat"]]
    return out.sort_values(["unique_id", "cutoff", "ds"], kind="stable").reset_index(drop=True)


def final_members(backtest: pd.DataFrame, size: int = 3) -> pd.DataFrame:
    """unique_id, model: the members of each series' combination, chosen on all backtest windows."""
    bt = backtest[backtest["model"] != COMBINATION].astype({"unique_id": str})
    return choose_members(_window_smape(bt), size)
