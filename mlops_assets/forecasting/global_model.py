"""The global model: one LightGBM trained across all series (mlforecast), as one more candidate of the zoo.

Features: the target's lags (1, 2, 3 and one season), rolling means of the last 4 periods and of the last
season, the week of the year and the month, and the regressors (``gold.regressors``: promotion depth,
holidays). Each series' target is standardised on its own history, so one model serves small and large
series; forecasts are recursive over the horizon.

Backtest: the same cutoffs as StatsForecast's (``settings.backtest``), one fit per cutoff on every series'
data up to that cutoff. Regressors listed in ``last_known`` (a price: its future is not known) are
replaced after the cutoff by their last value at the cutoff, in the backtest and in the final forecast
alike; the others (planned promotions, holidays) are used as they are (``known_at``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlforecast import MLForecast
from mlforecast.lag_transforms import RollingMean
from mlforecast.target_transforms import LocalStandardScaler

from mlops_assets.forecasting.zoo import GLOBAL_MODEL


def week_of_year(dates: pd.DatetimeIndex) -> np.ndarray:
    return dates.isocalendar().week.to_numpy(dtype=float)


def _mlforecast(frequency: str, season_length: int, seed: int, longest: int) -> MLForecast:
    season = max(int(season_length), 1)
    # Rows whose features are incomplete are dropped: a season lag and window need season + 2 periods, so
    # when no series is that long (an early cutoff of short data) they are left out, or nothing would remain.
    seasonal = {season} if longest >= season + 2 else set()
    lags = sorted({1, 2, 3} | seasonal)
    windows = sorted(({4} | seasonal) - {1})
    model = lgb.LGBMRegressor(
        n_estimators=200, learning_rate=0.05, num_leaves=31, min_child_samples=20, subsample=0.8,
        subsample_freq=1, colsample_bytree=0.8, random_state=seed, n_jobs=1, verbosity=-1, deterministic=True,
    )
    return MLForecast(
        models={GLOBAL_MODEL: model},
        freq=frequency,
        lags=lags,
        lag_transforms={1: [RollingMean(window_size=w) for w in windows]},
        date_features=[week_of_year, "month"],
        target_transforms=[LocalStandardScaler()],
    )


def known_at(regressors: pd.DataFrame, cutoff: pd.Timestamp, last_known: Sequence[str]) -> pd.DataFrame:
    """The regressors as known at ``cutoff``: ``last_known`` columns after it are their last value up to it
    (those of them that ``regressors`` holds: one left out of settings.regressors.use is not there)."""
    out = regressors.copy()
    last_known = [c for c in last_known if c in out.columns]
    if not last_known:
        return out
    after = out["ds"] > cutoff
    known = out.loc[~after].sort_values("ds").groupby("unique_id")[list(last_known)].last()
    fill = known.reindex(out.loc[after, "unique_id"]).to_numpy()
    out.loc[after, list(last_known)] = fill
    return out


def forecast_global(
    history: pd.DataFrame,
    regressors: pd.DataFrame | None,
    frequency: str,
    season_length: int,
    horizon: int,
    unique_ids: Sequence[str] | None = None,
    last_known: Sequence[str] = (),
    seed: int = 42,
) -> pd.DataFrame:
    """unique_id, ds, y_hat: the next ``horizon`` periods after each series' end, trained on all of history.

    ``regressors``: unique_id, ds and one column per regressor, covering history and the next horizon.
    """
    train = history[["unique_id", "ds", "y"]].astype({"unique_id": str})
    columns: list[str] = []
    future = None
    if regressors is not None:
        columns = [c for c in regressors.columns if c not in ("unique_id", "ds", "is_future")]
        cutoff = train.groupby("unique_id")["ds"].max()
        x = regressors[["unique_id", "ds", *columns]].astype({"unique_id": str})
        x = pd.concat([known_at(part, cutoff[uid], last_known) for uid, part in x.groupby("unique_id", sort=True)
                       if uid in cutoff.index]) if last_known else x
        train = train.merge(x, on=["unique_id", "ds"], how="left")
        train[columns] = train[columns].fillna(0.0)
        future = x[x["ds"] > x["unique_id"].map(cutoff)]
    mlf = _mlforecast(frequency, season_length, seed, int(train.groupby("unique_id").size().max()))
    mlf.fit(train, static_features=[])
    ids = sorted(train["unique_id"].unique()) if unique_ids is None else sorted(map(str, unique_ids))
    if future is not None:
        future = future[future["unique_id"].isin(ids)]
    with warnings.catch_warnings():
        # mlforecast warns at every predict step of every fit when a series is shorter than its longest lag
        # (lag52 of a series with less than a year): LightGBM handles the missing value, and under Dagster the
        # warning was printed hundreds of times per run.
        warnings.filterwarnings("ignore", message="Found null values in ", category=UserWarning)
        out = mlf.predict(horizon, X_df=future, ids=ids) if columns else mlf.predict(horizon, ids=ids)
    return out.rename(columns={GLOBAL_MODEL: "y_hat"})[["unique_id", "ds", "y_hat"]]


def backtest_cutoffs(history: pd.DataFrame, frequency: str, horizon: int, windows: int, step: int) -> pd.DataFrame:
    """unique_id, cutoff: StatsForecast's cross-validation cutoffs (the last window ends at each series' end)."""
    offset = pd.tseries.frequencies.to_offset(frequency)
    last = history.groupby("unique_id", sort=True)["ds"].max()
    rows = [(uid, end - offset * (horizon + step * (windows - 1 - w))) for uid, end in last.items()
            for w in range(windows)]
    return pd.DataFrame(rows, columns=["unique_id", "cutoff"])


def backtest_global(
    history: pd.DataFrame,
    regressors: pd.DataFrame | None,
    frequency: str,
    season_length: int,
    horizon: int,
    windows: int,
    step: int,
    last_known: Sequence[str] = (),
    seed: int = 42,
) -> pd.DataFrame:
    """The backtest rows of the global model: unique_id, cutoff, ds, y, model, y_hat (sorted like the zoo's)."""
    history = history[["unique_id", "ds", "y"]].astype({"unique_id": str})
    cutoffs = backtest_cutoffs(history, frequency, horizon, windows, step)
    parts = []
    for cutoff, group in cutoffs.groupby("cutoff", sort=True):
        train = history[history["ds"] <= cutoff]
        ids = sorted(set(group["unique_id"]) & set(train["unique_id"]))
        x = None
        if regressors is not None:
            x = known_at(regressors[regressors["ds"] <= cutoff + pd.tseries.frequencies.to_offset(frequency)
                                    * horizon], cutoff, last_known)
        # Everything after the cutoff is withheld, so forecast_global's own last-known rule is a no-op here.
        predicted = forecast_global(train, x, frequency, season_length, horizon, ids, (), seed)
        parts.append(predicted.assign(cutoff=cutoff))
    out = pd.concat(parts, ignore_index=True).merge(history, on=["unique_id", "ds"], how="left")
    out["model"] = GLOBAL_MODEL
    out = out[["unique_id", "cutoff", "ds", "y", "model", "y_hat"]]
    return out.sort_values(["unique_id", "cutoff", "ds"], kind="stable").reset_index(drop=True)
