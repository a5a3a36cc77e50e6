"""Accuracy of the backtest forecasts per series and model.

Scales, stated once:
- smape: M4 convention, 0 to 200: mean of ``200 * |y - y_hat| / (|y| + |y_hat|)``, with 0/0 counted as 0
  (a zero forecast of a zero actual is perfect). utilsforecast's smape is the same divided by 200.
- mae, rmse: in the units of y. bias: mean of ``y_hat - y`` (positive = over-forecast).
- mase: mae divided by the in-sample MAE of the seasonal naive forecast on the training data up to the
  window's cutoff (lag = season_length; lag 1 when the training data has no more than one season). It is
  NaN, not inf, when that scale is 0 (a constant training history): an infinite score would dominate any
  average over series, while NaN is skipped and counted.
- wape: ``100 * sum|y - y_hat| / sum|y|`` over the window, in percent (0 = exact, 100 = errors as large as
  the actuals). NaN, like mase, when the window's actuals are all 0.

Periods marked ``closed`` in the backtest (declared closures: the product forecasts 0 there) are not scored:
every model would be exact or every non-zero one would score 200 SMAPE there, which says nothing about it.

Every metric is computed per series, model and window first, then averaged over the windows, so each
cutoff weighs the same. smape, mae, rmse and bias are NaN when any window has a NaN forecast (a model that
could not forecast one window is not comparable with one that could); mase and wape average the windows
whose scale is defined.

The selection ranks models on one of SELECTION_METRICS (settings.selection.metric).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EVALUATION_COLUMNS = ["unique_id", "model", "smape", "mae", "rmse", "mase", "wape", "bias", "n_windows"]
SELECTION_METRICS = ("smape", "mase", "rmse", "wape", "mae")
METRIC_DESCRIPTIONS = {
    "smape": "SMAPE, M4 scale 0-200",
    "mase": "MASE, MAE over the in-sample seasonal naive MAE before each cutoff (1 = as good as it)",
    "rmse": "RMSE, in the units of y",
    "wape": "WAPE, 100 * sum|error| / sum|actual|, percent",
    "mae": "MAE, in the units of y: averaged over series, each weighs what it sells (the pooled WAPE's view)",
}


def check_metric(metric: str) -> str:
    if metric not in SELECTION_METRICS:
        raise ValueError(f"selection metric {metric!r} is not one of {SELECTION_METRICS}")
    return metric


def scored_rows(backtest: pd.DataFrame) -> pd.DataFrame:
    """The backtest without its declared-closed periods (column ``closed``, when there is one)."""
    if "closed" not in backtest.columns:
        return backtest
    return backtest[~backtest["closed"].fillna(False).astype(bool).to_numpy()]


def smape_terms(y: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
    """SMAPE of each point on the M4 scale 0-200 (0/0 counts as 0, NaN stays NaN)."""
    num = 200.0 * np.abs(y - y_hat)
    den = np.abs(y) + np.abs(y_hat)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = num / den
    # 0/0 is a perfect forecast; NaN inputs stay NaN.
    return np.where((den == 0) & (num == 0), 0.0, terms)


def smape(y, y_hat) -> float:
    """M4 sMAPE on a 0-200 scale; 0/0 counts as 0; NaN if any input is NaN."""
    y = np.asarray(y, dtype=float)
    y_hat = np.asarray(y_hat, dtype=float)
    if y.shape != y_hat.shape:
        raise ValueError(f"y and y_hat differ in shape: {y.shape} vs {y_hat.shape}")
    if y.size == 0:
        raise ValueError("smape of an empty array is undefined")
    return float(np.mean(smape_terms(y, y_hat)))


def seasonal_naive_scale(history: pd.DataFrame, cutoffs: pd.DataFrame, season_length: int) -> pd.Series:
    """In-sample seasonal naive MAE of each series' history up to each cutoff (inclusive), no leakage.

    ``cutoffs`` has unique_id and cutoff; the result is aligned with its rows. NaN where the training
    data has fewer than two points, the cutoff is not a date of the series, or the scale is 0.
    """
    h = history[["unique_id", "ds", "y"]].astype({"unique_id": str})
    h = h.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    g = h.groupby("unique_id", sort=False)["y"]
    h["pos"] = h.groupby("unique_id", sort=False).cumcount()
    m = max(int(season_length), 1)
    # Cumulative sums of |y_t - y_{t-lag}|: the sum up to a cutoff is one lookup, whatever the cutoff.
    h["cum_seasonal"] = (h["y"] - g.shift(m)).abs().fillna(0.0).groupby(h["unique_id"], sort=False).cumsum()
    h["cum_lag1"] = (h["y"] - g.shift(1)).abs().fillna(0.0).groupby(h["unique_id"], sort=False).cumsum()
    at = cutoffs[["unique_id", "cutoff"]].astype({"unique_id": str}).merge(
        h.rename(columns={"ds": "cutoff"})[["unique_id", "cutoff", "pos", "cum_seasonal", "cum_lag1"]],
        on=["unique_id", "cutoff"],
        how="left",
    )
    n_train = at["pos"] + 1
    seasonal = n_train >= m + 1
    lag = np.where(seasonal, m, 1)
    total = np.where(seasonal, at["cum_seasonal"], at["cum_lag1"])
    count = n_train - lag
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(count > 0, total / count, np.nan)
    scale = np.where(scale > 0, scale, np.nan)
    return pd.Series(scale, index=cutoffs.index, name="scale")


def window_metrics(backtest: pd.DataFrame, history: pd.DataFrame, season_length: int) -> pd.DataFrame:
    """Per series, model and window: smape, mae, rmse, mase, wape, bias (NaN when a forecast is NaN)."""
    missing = [c for c in ("unique_id", "cutoff", "ds", "y", "model", "y_hat") if c not in backtest.columns]
    if missing:
        raise ValueError(f"backtest lacks column(s) {missing}; it has {list(backtest.columns)}")
    bt = scored_rows(backtest)[["unique_id", "cutoff", "model", "y", "y_hat"]].astype({"unique_id": str})
    y = bt["y"].to_numpy(dtype=float)
    y_hat = bt["y_hat"].to_numpy(dtype=float)
    err = y_hat - y
    terms = pd.DataFrame(
        {
            "unique_id": bt["unique_id"].to_numpy(),
            "model": bt["model"].to_numpy(),
            "cutoff": bt["cutoff"].to_numpy(),
            "smape": smape_terms(y, y_hat),
            "mae": np.abs(err),
            "mse": err**2,
            "bias": err,
            "abs_y": np.abs(y),
        }
    )
    keys = ["unique_id", "model", "cutoff"]
    per_window = terms.groupby(keys, sort=True).agg(
        smape=("smape", "mean"),
        mae=("mae", "mean"),
        mse=("mse", "mean"),
        bias=("bias", "mean"),
        abs_error=("mae", "sum"),
        abs_y=("abs_y", "sum"),
        n=("smape", "size"),
        n_valid=("smape", "count"),
    )
    per_window = per_window.reset_index()
    # A NaN forecast anywhere in the window makes the window's metrics NaN.
    incomplete = per_window["n_valid"] < per_window["n"]
    per_window.loc[incomplete, ["smape", "mae", "mse", "bias", "abs_error"]] = np.nan
    per_window["rmse"] = np.sqrt(per_window["mse"])
    with np.errstate(divide="ignore", invalid="ignore"):
        per_window["wape"] = np.where(per_window["abs_y"] > 0, 100.0 * per_window["abs_error"] / per_window["abs_y"],
                                      np.nan)
    windows = per_window[["unique_id", "cutoff"]].drop_duplicates()
    windows["scale"] = seasonal_naive_scale(history, windows, season_length)
    per_window = per_window.merge(windows, on=["unique_id", "cutoff"], how="left")
    per_window["mase"] = per_window["mae"] / per_window["scale"]
    per_window["complete"] = ~incomplete.to_numpy()
    return per_window[keys + ["smape", "mae", "rmse", "mase", "wape", "bias", "complete"]]


def evaluate(backtest: pd.DataFrame, history: pd.DataFrame, season_length: int) -> pd.DataFrame:
    """Per series and model: smape (0-200), mae, rmse, mase, wape (%), bias, n_windows; averaged over windows."""
    per_window = window_metrics(backtest, history, season_length)
    out = per_window.groupby(["unique_id", "model"], sort=True).agg(
        smape=("smape", "mean"),
        mae=("mae", "mean"),
        rmse=("rmse", "mean"),
        mase=("mase", "mean"),
        wape=("wape", "mean"),
        bias=("bias", "mean"),
        n_windows=("cutoff", "size"),
        n_complete=("complete", "sum"),
    )
    # A model missing a window is not comparable: NaN, never averaged over the windows it managed.
    partial = out["n_complete"] < out["n_windows"]
    out.loc[partial, ["smape", "mae", "rmse", "bias", "mase", "wape"]] = np.nan
    out["n_windows"] = out["n_windows"].astype("int64")
    return out.reset_index()[EVALUATION_COLUMNS]
