"""Rolling-origin backtest of every model of the zoo on every series, in one StatsForecast call.

The cutoffs are the last ``settings.backtest.windows`` origins spaced ``settings.step`` periods apart, each
followed by ``settings.horizon`` periods of actuals. For each window a model is fitted on the data up to
and including its cutoff only (StatsForecast slices each series at the cutoff before fitting; the test
suite checks it by making the future absurd and seeing the forecasts not move).

The global model (LightGBM) and the per-series combination are not StatsForecast models: they run beside
it through the same cutoffs (forecasting.global_model, forecasting.combinations), with the regressors.

A model that raises on a series is replaced, for that series and window, by ``zoo.FALLBACK_MODEL`` under
the failing model's name; a model that cannot forecast a short window (SeasonalNaive with less than one
season of data) gives NaN, which the selection never picks.

Declared closures (settings.closed, daily data; a closure column's values come with the regressors) are
forecast as 0 by every model and flagged ``closed`` so that the scoring skips them (forecasting.closures).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mlops_assets.forecasting.closures import ClosedPeriods, mark_closed, with_closed
from mlops_assets.forecasting.combinations import combine_backtest
from mlops_assets.forecasting.global_model import backtest_global
from mlops_assets.forecasting.parallel import CleanWorkerStatsForecast as StatsForecast
from mlops_assets.forecasting.zoo import (
    COMBINATION,
    GLOBAL_MODEL,
    STATSFORECAST_NAMES,
    build_fallback,
    build_models,
    default_models,
    validate_names,
)
from mlops_assets.settings import Settings

BACKTEST_COLUMNS = ["unique_id", "cutoff", "ds", "y", "model", "y_hat", "closed"]


def validate_history(df: pd.DataFrame, min_length: int, what: str = "history") -> pd.DataFrame:
    """unique_id (str), ds, y, sorted; raise ValueError naming the series that cannot be backtested."""
    missing = [c for c in ("unique_id", "ds", "y") if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")
    df = df[["unique_id", "ds", "y"]].astype({"unique_id": str, "y": float})
    df["ds"] = pd.to_datetime(df["ds"])
    bad = df.loc[~np.isfinite(df["y"].to_numpy()), "unique_id"].unique()
    if len(bad):
        raise ValueError(
            f"{what}: y is missing or infinite in {len(bad)} series, e.g. {sorted(bad)[:10]}; "
            "only eligible series (see gold.series_excluded) can be backtested"
        )
    duplicated = df.loc[df.duplicated(["unique_id", "ds"]), "unique_id"].unique()
    if len(duplicated):
        raise ValueError(f"{what}: repeated (unique_id, ds) in series {sorted(duplicated)[:10]}")
    sizes = df.groupby("unique_id", sort=True).size()
    short = sizes[sizes < min_length]
    if len(short):
        shown = ", ".join(f"{uid} ({n})" for uid, n in short.head(10).items())
        raise ValueError(
            f"{what}: {len(short)} series have fewer than the {min_length} periods a backtest needs "
            f"(training + windows), e.g. {shown}; exclude them or lower backtest.windows/horizon"
        )
    return df.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)


def run_backtest(
    df: pd.DataFrame,
    settings: Settings,
    models: list[str] | None = None,
    n_jobs: int = -1,
    regressors: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Backtest forecasts in long format: unique_id, cutoff, ds, y, model, y_hat, closed.

    Sorted by unique_id, model, cutoff, ds. ``models`` defaults to ``zoo.default_models(settings)``.
    ``regressors`` (gold.regressors' columns) feed the global model.
    """
    names = validate_names(models) if models is not None else default_models(settings)
    df = validate_history(df, settings.min_series_length)
    local = [n for n in names if n in STATSFORECAST_NAMES]
    closed = ClosedPeriods.from_settings(settings)
    parts = [_statsforecast_backtest(df, settings, local, n_jobs)] if local else []
    if GLOBAL_MODEL in names:
        parts.append(backtest_global(
            df, with_closed(regressors, closed), settings.frequency, settings.season, settings.horizon,
            settings.backtest.windows, settings.step, last_known=settings.regressors.unknown_future, seed=settings.seed,
        ))
    backtest = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    backtest = mark_closed(backtest, closed, regressors)
    if COMBINATION in names:
        combined = combine_backtest(backtest, settings.combination_size, settings.selection.metric, df, settings.season)
        backtest = pd.concat([backtest, combined], ignore_index=True)
    if len(names) > len(local):
        backtest = backtest.sort_values(["unique_id", "model", "cutoff", "ds"], kind="stable", ignore_index=True)
    return backtest


def _statsforecast_backtest(df: pd.DataFrame, settings: Settings, names: list[str], n_jobs: int) -> pd.DataFrame:
    sf = StatsForecast(
        models=build_models(names, settings.season, settings.horizon),
        freq=settings.frequency,
        n_jobs=n_jobs,
        fallback_model=build_fallback(settings.season, settings.horizon),
    )
    with warnings.catch_warnings():
        # SeasonalNaive warns once per short window; its NaN forecasts already say so.
        warnings.filterwarnings("ignore", message="Historical data .* shorter than season_length")
        cv = sf.cross_validation(
            df=df,
            h=settings.horizon,
            n_windows=settings.backtest.windows,
            step_size=settings.step,
        )
    return to_long(cv, names)


def to_long(cv: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """StatsForecast's wide cross-validation frame to the long backtest table, without a sort.

    Every series has the same number of rows (windows x horizon) sorted by cutoff and ds, so the long
    layout (series, model, cutoff, ds) is a reshape of the wide one.
    """
    cv = cv.reset_index(drop=True)
    ordered = sorted(names)
    n_rows, n_models = len(cv), len(ordered)
    per_series = int(cv.groupby("unique_id", sort=False).size().iloc[0]) if n_rows else 0
    n_series = n_rows // per_series if per_series else 0

    def spread(values: np.ndarray) -> np.ndarray:
        return np.broadcast_to(
            values.reshape(n_series, 1, per_series), (n_series, n_models, per_series)
        ).ravel()

    y_hat = cv[ordered].to_numpy(dtype=float).reshape(n_series, per_series, n_models)
    return pd.DataFrame(
        {
            "unique_id": spread(cv["unique_id"].astype(str).to_numpy()),
            "cutoff": spread(cv["cutoff"].to_numpy()),
            "ds": spread(cv["ds"].to_numpy()),
            "y": spread(cv["y"].to_numpy(dtype=float)),
            "model": np.tile(np.repeat(np.asarray(ordered, dtype=object), per_series), n_series),
            "y_hat": y_hat.transpose(0, 2, 1).ravel(),
        }
    )
