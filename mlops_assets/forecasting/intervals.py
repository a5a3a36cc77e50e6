"""Prediction intervals calibrated on the backtest: split conformal per horizon step, scaled per series.

Why not the models' own intervals: on real weekly sets the 80% interval held 74-76% of actuals and the 95%
one 88%; on daily data the 80% one held 98%; and their widths jump from one step to the next (24 of the
sample's 52 series were wider at step 1 than at step 2). The backtest already holds what each series'
champion would have forecast at several cutoffs, next to what happened. An interval here is

    y_hat  +-  q[step, level] * scale[series]

- ``scale[series]``: the mean absolute backtest error of the series' champion, so one pooled quantile serves
  series of any size (a series alone has only ``windows`` errors per step: far too few for a 95% quantile).
  Each calibration error is scaled by the mean of the series' other windows, as a future error will be.
- ``q[step, level]``: the conformal quantile (finite-sample corrected, ``ceil((n + 1) * level) / n``) of
  ``|y - y_hat| / scale`` over every series and window at that horizon step (``CALIBRATIONS``).
- Widths never shrink from one step to the next: q is made non-decreasing over steps (a running maximum),
  since the uncertainty about step k + 1 includes that about step k.

Series without a finite backtest error get a scale from their mean absolute actual times the median ratio
of scale to mean absolute actual over the other series.

Only the champions' backtest rows and each series' mean absolute actual are needed, so at scale DuckDB
hands over those (``history`` may be that mean, a Series by unique_id) and never the whole backtest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_assets.forecasting.metrics import smape_terms
from mlops_assets.forecasting.zoo import MODEL_NAMES, frequency_family

# How the scaled scores become multipliers per step. "by_step": a conformal quantile of each step's own
# scores, made non-decreasing over the steps; "pooled": one quantile of every step's scores, divided by a
# fitted growth k ** b and multiplied back. Chosen on backtest windows (benchmarks/intervals.py, RESULTS.md):
# with each series' champion chosen without its last window and calibrated on the windows before it, the
# last window held 72.6% (80) and 91.0% (95) with "pooled", 78.4% and 93.7% with "by_step", over 16 windows
# of 4 data sets.
CALIBRATIONS = ("by_step", "pooled", "isotonic")
DEFAULT_CALIBRATION = "by_step"
# Daily: 28 steps of few scores each, where the running maximum of "by_step" keeps every upward jump. On the
# backtest windows before the daily benchmarks' holdouts (benchmarks/daily_selection.py, INTERVALS=1) the
# played windows held 91.1 / 98.3 (Favorita) and 86.2 / 96.8 (M5 daily) with "by_step", 85.9 / 96.6 and
# 79.6 / 95.1 with "isotonic". Weekly and monthly keep "by_step", measured on theirs.
DAILY_CALIBRATION = "isotonic"


def calibration_method(frequency: str) -> str:
    return DAILY_CALIBRATION if frequency_family(frequency) == "D" else DEFAULT_CALIBRATION


@dataclass(frozen=True)
class Calibration:
    """Per step and level the multiplier q (index: step 1..horizon; columns: levels); per series the scale."""

    quantiles: pd.DataFrame
    scale: pd.Series
    n_scores: int

    def restricted(self, unique_ids: Sequence[str]) -> Calibration:
        """The same calibration carrying only these series' scales (what one bucket's fit needs)."""
        return Calibration(self.quantiles, self.scale.reindex(pd.Index(unique_ids, dtype=object)), self.n_scores)

    @classmethod
    def merged(cls, parts: Sequence[Calibration]) -> Calibration:
        """Restricted parts of one calibration put back together."""
        first = parts[0]
        for other in parts[1:]:
            if other.n_scores != first.n_scores or not other.quantiles.equals(first.quantiles):
                raise ValueError("the parts come from different calibrations")
        scale = pd.concat([p.scale for p in parts]).sort_index(kind="stable")
        return cls(first.quantiles, scale, first.n_scores)

    def half_widths(self, unique_ids: Sequence[str], h: int, level: float) -> np.ndarray:
        """(len(unique_ids), h) half widths of the level's interval."""
        q = self.quantiles[level].to_numpy(dtype=float)
        # Steps beyond the backtested horizon (a series behind the others, forecasting.common_end) keep the
        # last step's multiplier: the backtest says nothing of them, and widths never shrink.
        q = q[:h] if h <= len(q) else np.concatenate([q, np.repeat(q[-1:], h - len(q))])
        s = self.scale.reindex(pd.Index(unique_ids, dtype=object)).to_numpy(dtype=float)
        return s[:, None] * q[None, :]


def champion_errors(backtest: pd.DataFrame, champions: pd.DataFrame) -> pd.DataFrame:
    """unique_id, cutoff, step (1..h), y, y_hat, error (y - y_hat) of each series' champion in the backtest.

    Rows whose forecast is NaN (a model that could not forecast a window) and declared-closed periods (forecast
    0 by rule, not a model's error) are dropped, after the steps are counted.
    """
    picks = champions[["unique_id", "model"]].astype({"unique_id": str, "model": str})
    columns = ["unique_id", "cutoff", "ds", "y", "model", "y_hat"] + (["closed"] if "closed" in backtest else [])
    bt = backtest[columns].astype({"unique_id": str, "model": str})
    rows = bt.merge(picks, on=["unique_id", "model"], how="inner")
    rows = rows.sort_values(["unique_id", "cutoff", "ds"], kind="stable")
    rows["step"] = rows.groupby(["unique_id", "cutoff"], sort=False).cumcount() + 1
    rows["error"] = rows["y"].to_numpy(dtype=float) - rows["y_hat"].to_numpy(dtype=float)
    rows = rows[np.isfinite(rows["error"].to_numpy())]
    if "closed" in rows.columns:
        rows = rows[~rows["closed"].astype(bool).to_numpy()]
    return rows[["unique_id", "cutoff", "step", "y", "y_hat", "error"]].reset_index(drop=True)


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The split-conformal quantile of the scores for a level in percent (the largest score when n is small)."""
    scores = np.sort(np.asarray(scores, dtype=float))
    n = len(scores)
    if n == 0:
        return float("nan")
    rank = min(math.ceil((n + 1) * level / 100.0), n)
    return float(scores[rank - 1])


def step_growth(ratios: np.ndarray, steps: np.ndarray, horizon: int) -> np.ndarray:
    """g[k - 1] = k ** b, b fitted to the mean scaled error per step on a log-log scale, clipped to [0, 1].

    The error's growth with the step, as one smooth exponent: the mean error of a single step is set by
    the few calendar dates that step falls on in the backtest windows (a Christmas week at step 1 in one
    window), so quantiles per step jump; one exponent keeps what is systematic (a random walk's errors
    grow like sqrt(k), a seasonal naive's not at all) and makes widths non-decreasing by construction.
    """
    k = np.arange(1, horizon + 1)
    means = np.array([ratios[steps == j].mean() if (steps == j).any() else np.nan for j in k])
    ok = np.isfinite(means) & (means > 0)
    b = 0.0
    if ok.sum() >= 2:
        b = float(np.clip(np.polyfit(np.log(k[ok]), np.log(means[ok]), 1)[0], 0.0, 1.0))
    return k.astype(float) ** b


def quantiles_by_step(ratios: np.ndarray, steps: np.ndarray, horizon: int, level: float) -> np.ndarray:
    """q[k - 1]: the conformal quantile of step k's scores, never below an earlier step's.

    Pooling every step behind one growth curve let the many small early-step errors set the quantile; the
    champions' errors at a step are their own sample, and the finite-sample rank (few scores: the largest)
    widens where they are few. A step without scores takes the one before it (the first: every score's).
    """
    q = np.array([conformal_quantile(ratios[steps == k], level) for k in range(1, horizon + 1)])
    if np.isnan(q[0]):
        q[0] = conformal_quantile(ratios, level)
    q = pd.Series(q).ffill().to_numpy()
    return np.maximum.accumulate(np.nan_to_num(q, nan=0.0))


def quantiles_isotonic(ratios: np.ndarray, steps: np.ndarray, horizon: int, level: float) -> np.ndarray:
    """q[k - 1]: each step's conformal quantile, fitted non-decreasing over the steps by isotonic regression
    (weighted by each step's number of scores) instead of a running maximum.

    A running maximum of 28 noisy daily quantiles keeps every upward jump: where the error does not grow
    with the step (the daily global model's lags are all beyond the horizon) it widens the later steps.
    """
    from sklearn.isotonic import IsotonicRegression

    k = np.arange(1, horizon + 1)
    counts = np.array([(steps == j).sum() for j in k])
    q = np.array([conformal_quantile(ratios[steps == j], level) for j in k])
    if not (counts > 0).any():
        return np.full(horizon, np.nan_to_num(conformal_quantile(ratios, level), nan=0.0))
    fitted = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(k[counts > 0], q[counts > 0],
                                                                            sample_weight=counts[counts > 0])
    return np.maximum.accumulate(np.nan_to_num(fitted.predict(k), nan=0.0))


def _held_out_scales(errors: pd.DataFrame) -> pd.Series:
    """Per error row, the series' mean absolute error on its other windows (NaN when it has no other).

    Scaling an error by a mean that includes it shrinks the scores (most of all where errors within a
    window are correlated, as a random walk's are), and intervals come out too narrow; a forecast is
    later scaled by errors of other windows, so the scores are too.
    """
    absolute = errors["error"].abs()
    keys = [errors["unique_id"], errors["cutoff"]]
    window_sum = absolute.groupby(keys).transform("sum")
    window_count = absolute.groupby(keys).transform("count")
    total_sum = absolute.groupby(errors["unique_id"]).transform("sum")
    total_count = absolute.groupby(errors["unique_id"]).transform("count")
    others = total_count - window_count
    return ((total_sum - window_sum) / others.where(others > 0)).reset_index(drop=True)


def mean_abs_actual(history: pd.DataFrame | pd.Series) -> pd.Series:
    """Each series' mean absolute actual (index: unique_id); a Series is taken as already that."""
    if isinstance(history, pd.Series):
        return history.rename(index=str).astype(float)
    return history.astype({"unique_id": str}).assign(a=lambda d: d["y"].abs()).groupby("unique_id")["a"].mean()


def _scales(error_scale: pd.Series, history: pd.DataFrame | pd.Series, unique_ids: pd.Index) -> pd.Series:
    level = mean_abs_actual(history)
    scale = error_scale.reindex(unique_ids)
    missing = scale.isna()
    if missing.any():
        ratio = (scale / level.reindex(unique_ids)).replace([np.inf, -np.inf], np.nan).median()
        ratio = 1.0 if not np.isfinite(ratio) else float(ratio)
        scale[missing] = level.reindex(unique_ids[missing]).fillna(0.0).to_numpy() * ratio
    return scale.astype(float)


@dataclass(frozen=True)
class ErrorParts:
    """What the calibration keeps of a set of series' champion errors: each series' mean absolute error,
    and per error row its held-out scaled size and its step, in the rows' order (unique_id, cutoff, ds)."""

    scale: pd.Series
    ratios: np.ndarray
    steps: np.ndarray


def error_parts(backtest: pd.DataFrame, champions: pd.DataFrame) -> ErrorParts:
    """The ErrorParts of the champions' backtest rows; series are independent here, so any split of the series
    gives parts that, in the series' sorted order, concatenate to the whole's."""
    errors = champion_errors(backtest, champions)
    scale = errors.assign(abs_error=errors["error"].abs()).groupby("unique_id")["abs_error"].mean()
    s = _held_out_scales(errors).fillna(scale.reindex(errors["unique_id"]).reset_index(drop=True)).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        # A series whose champion was exact on every other window (scale 0) adds a zero score.
        ratios = np.where(s > 0, np.abs(errors["error"].to_numpy()) / s, 0.0)
    return ErrorParts(scale, ratios, errors["step"].to_numpy())


def calibration_of(
    parts: Sequence[ErrorParts],
    champions: pd.DataFrame,
    history: pd.DataFrame | pd.Series,
    levels: Sequence[float],
    horizon: int,
    method: str = DEFAULT_CALIBRATION,
) -> Calibration:
    """The calibration pooled from the ErrorParts of disjoint sets of series, given in sorted series order."""
    if method not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {method!r}; one of {CALIBRATIONS}")
    uids = pd.Index(sorted(champions["unique_id"].astype(str).unique()), dtype=object)
    scale = _scales(pd.concat([p.scale for p in parts]), history, uids)
    ratios = np.concatenate([p.ratios for p in parts])
    steps = np.concatenate([p.steps for p in parts])
    if method in ("by_step", "isotonic"):
        by_step = quantiles_by_step if method == "by_step" else quantiles_isotonic
        table = {level: by_step(ratios, steps, horizon, level) for level in levels}
    else:
        growth = step_growth(ratios, steps, horizon)
        scores = ratios / growth[steps - 1]
        table = {level: conformal_quantile(scores, level) * growth for level in levels}
    quantiles = pd.DataFrame(table, index=pd.RangeIndex(1, horizon + 1, name="step"))
    return Calibration(quantiles=quantiles, scale=scale, n_scores=int(len(ratios)))


def calibrate(
    backtest: pd.DataFrame,
    champions: pd.DataFrame,
    history: pd.DataFrame | pd.Series,
    levels: Sequence[float],
    horizon: int,
    method: str = DEFAULT_CALIBRATION,
) -> Calibration:
    """The calibration of the champions' intervals from their backtest errors (see the module doc).

    ``backtest`` needs only the champions' rows; ``history`` may be each series' mean absolute actual.
    """
    return calibration_of([error_parts(backtest, champions)], champions, history, levels, horizon, method)


def non_decreasing_bounds(mean: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds (rows = series, columns = steps) whose distance to the mean never shrinks over the steps."""
    below = np.maximum.accumulate(np.maximum(mean - lo, 0.0), axis=1)
    above = np.maximum.accumulate(np.maximum(hi - mean, 0.0), axis=1)
    return mean - below, mean + above


def coverage(actual: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of actuals inside [lo, hi], in percent."""
    actual = np.asarray(actual, dtype=float)
    return float(100.0 * np.mean((actual >= lo) & (actual <= hi)))


@dataclass(frozen=True)
class LastWindow:
    """A set of series' champion rows split for the coverage check: the ErrorParts of the windows before each
    series' last, and the last window's rows (unique_id, step, y, y_hat)."""

    earlier: ErrorParts
    rows: pd.DataFrame


def chosen_without_last(backtest: pd.DataFrame) -> pd.DataFrame:
    """unique_id, model: each series' model of lowest mean sMAPE on the windows before its last (ties: the
    simpler model, zoo.MODEL_NAMES' order); ``backtest`` holds every model's rows."""
    bt = backtest.astype({"unique_id": str, "model": str})
    earlier = bt[bt["cutoff"] < bt.groupby("unique_id", sort=False)["cutoff"].transform("max")]
    terms = smape_terms(earlier["y"].to_numpy(dtype=float), earlier["y_hat"].to_numpy(dtype=float))
    means = earlier.assign(s=terms).groupby(["unique_id", "model"], as_index=False)["s"].mean().dropna()
    order = {name: i for i, name in enumerate(MODEL_NAMES)}
    means["order"] = means["model"].map(order).fillna(len(order))
    ranked = means.sort_values(["unique_id", "s", "order", "model"], kind="stable")
    return ranked.drop_duplicates("unique_id")[["unique_id", "model"]].reset_index(drop=True)


def last_window(backtest: pd.DataFrame, champions: pd.DataFrame, reselect: bool = False) -> LastWindow | None:
    """The LastWindow of the champions' rows; None when the backtest has a single window.

    ``reselect``: ``backtest`` holds every model's rows and each series' champion is chosen again without its
    last window (chosen_without_last), so that the window is unseen by the selection too: checked on the
    windows that chose them, the champions' errors look smaller than they will be.
    """
    bt = backtest.astype({"unique_id": str})
    is_last = bt["cutoff"] == bt.groupby("unique_id", sort=False)["cutoff"].transform("max")
    if (~is_last).sum() == 0:
        return None
    if reselect:
        champions = chosen_without_last(bt)
    rows = champion_errors(bt[is_last], champions)[["unique_id", "step", "y", "y_hat"]]
    return LastWindow(error_parts(bt[~is_last], champions), rows)


def coverage_of(
    parts: Sequence[LastWindow | None],
    champions: pd.DataFrame,
    history: pd.DataFrame | pd.Series,
    levels: Sequence[float],
    horizon: int,
    clip: bool = False,
    method: str = DEFAULT_CALIBRATION,
) -> dict[float, float]:
    """last_window_coverage pooled from the LastWindows of disjoint sets of series, in sorted series order."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return {}
    calibration = calibration_of([p.earlier for p in parts], champions, history, levels, horizon, method)
    rows = pd.concat([p.rows for p in parts], ignore_index=True)
    y, y_hat = rows["y"].to_numpy(dtype=float), rows["y_hat"].to_numpy(dtype=float)
    scale = calibration.scale.reindex(rows["unique_id"]).to_numpy(dtype=float)
    out = {}
    for level in levels:
        half = scale * calibration.quantiles[level].reindex(rows["step"]).to_numpy(dtype=float)
        lo, hi = y_hat - half, y_hat + half
        if clip:
            lo, hi = np.clip(lo, 0, None), np.clip(hi, 0, None)
        out[level] = coverage(y, lo, hi)
    return out


def last_window_coverage(
    backtest: pd.DataFrame,
    champions: pd.DataFrame,
    history: pd.DataFrame | pd.Series,
    levels: Sequence[float],
    horizon: int,
    clip: bool = False,
    method: str = DEFAULT_CALIBRATION,
    reselect: bool = False,
) -> dict[float, float]:
    """Coverage (percent) on each series' last backtest window of intervals calibrated on the windows before it.

    The honest check of the calibration: nothing of the last window is used to set its intervals. Empty
    when the backtest has a single window. Like ``calibrate``, it needs only the champions' rows; with
    ``reselect`` it needs every model's, and nothing of the last window chooses the champions either.
    """
    return coverage_of([last_window(backtest, champions, reselect)], champions, history, levels, horizon, clip,
                       method)
