"""The global model: one LightGBM trained across all series (mlforecast), as one more candidate of the zoo.

Its features depend on the frequency (``GlobalSpec``, chosen per frequency family by ``spec_for`` on
backtests, benchmarks/accuracy.py --daily, figures in docs/forecasting-defaults.md):

- weekly and monthly: the target's lags 1, 2, 3 and one season, rolling means of the last 4 periods and of
  the last season, the week of the year and the month; each series' target standardised on its own history;
  forecasts recursive over the horizon.
- daily: no lag shorter than the horizon (rounded up to whole weeks), so no forecast feeds on another and
  errors do not compound over a six-week horizon: the same weekday's sales ``h``, ``h + 7``, ... days back and
  a year back, rolling means of those; day of week, day of month, week of year, month; days to and since the
  next public holiday (from the ``holiday_days`` regressor); each series' target standardised (a log target
  did worse on the backtest windows of daily store sales).

Every regressor (``gold.regressors``: promotion depth, holidays, declared series columns) is a feature, and
so are static attributes of a series (``statics``: one row per series, e.g. brand, category, store type; or
columns of the regressors named ``static:<attribute>``, as forecasting.eligible.regressors_sql reads
settings.regressors.statics, so that they travel with the regressors by model group).
Closed periods (``closed``: a boolean column of the regressors, see forecasting.closures) are left out of
training (weight 0) and forecast as 0.

Backtest: the same cutoffs as StatsForecast's (``settings.backtest``), one fit per cutoff on every series'
data up to that cutoff. Regressors listed in ``last_known`` (a price: its future is not known) are
replaced after the cutoff by their last value at the cutoff, in the backtest and in the final forecast
alike; the others (planned promotions, holidays) are used as they are (``known_at``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlforecast import MLForecast
from mlforecast.lag_transforms import RollingMean, SeasonalRollingMean
from mlforecast.target_transforms import GlobalSklearnTransformer, LocalStandardScaler
from sklearn.preprocessing import FunctionTransformer

from mlops_assets.forecasting.zoo import GLOBAL_MODEL, STATIC_PREFIX, frequency_family

CLOSED_COLUMN = "closed"
HOLIDAY_COLUMN = "holiday_days"
# Farther than this from a holiday is "not near one": a horizon of weeks needs no longer reach.
HOLIDAY_REACH = 30


@dataclass(frozen=True)
class GlobalSpec:
    """How the global model is built for a frequency family.

    ``strategy``: 'recursive' (short lags, each step's forecast feeds the next) or 'long_lags' (no lag shorter
    than the horizon rounded up to whole seasons). ``target``: 'scale' (per-series standardisation) or
    'log1p' (log of 1 + y, for series without negative values; others are scaled).
    """

    strategy: str = "recursive"
    target: str = "scale"
    calendar: tuple[str, ...] = ("week", "month")
    holiday_distance: bool = False
    trees: dict = field(default_factory=lambda: {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 31})


# Daily: chosen on the backtest windows before the holdouts (benchmarks/accuracy.py --daily --choose, table in
# benchmarks/RESULTS.md); weekly and monthly keep the features measured before.
SPECS: dict[str, GlobalSpec] = {
    "W": GlobalSpec(),
    "MS": GlobalSpec(),
    "D": GlobalSpec(strategy="long_lags", calendar=("dayofweek", "day", "week", "month"), holiday_distance=True),
}


def spec_for(frequency: str) -> GlobalSpec:
    return SPECS[frequency_family(frequency)]


def week_of_year(dates: pd.DatetimeIndex) -> np.ndarray:
    return dates.isocalendar().week.to_numpy(dtype=float)


CALENDAR = {"week": week_of_year, "month": "month", "dayofweek": "dayofweek", "day": "day", "year": "year",
            "dayofyear": "dayofyear"}


def lags_for(spec: GlobalSpec, season_length: int, horizon: int, longest: int) -> tuple[list[int], dict]:
    """The target's lags and lag transforms (mlforecast's ``lags`` and ``lag_transforms``)."""
    season = max(int(season_length), 1)
    if spec.strategy == "direct":
        lags = sorted({*range(1, season + 1), 2 * season, 3 * season, 4 * season})
        return lags, {1: [RollingMean(window_size=season), RollingMean(window_size=4 * season)]}
    if spec.strategy == "long_lags":
        first = season * math.ceil(horizon / season)
        lags = [first + season * k for k in range(4)]
        year = season * round(364 / season) if season > 1 else 364
        # A year back only where some series has a year and a horizon of history: otherwise always missing.
        if longest >= year + horizon and year > lags[-1]:
            lags.append(year)
        windows = [RollingMean(window_size=season), RollingMean(window_size=4 * season)]
        if season > 1:
            windows.append(SeasonalRollingMean(season_length=season, window_size=4))
        return lags, {first: windows}
    # Rows whose features are incomplete are dropped: a season lag and window need season + 2 periods, so
    # when no series is that long (an early cutoff of short data) they are left out, or nothing would remain.
    seasonal = {season} if longest >= season + 2 else set()
    lags = sorted({1, 2, 3} | seasonal)
    windows = sorted(({4} | seasonal) - {1})
    return lags, {1: [RollingMean(window_size=w) for w in windows]}


def build_mlforecast(spec: GlobalSpec, frequency: str, season_length: int, horizon: int, seed: int, longest: int,
                log_target: bool) -> MLForecast:
    lags, transforms = lags_for(spec, season_length, horizon, longest)
    model = lgb.LGBMRegressor(
        **spec.trees, min_child_samples=20, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
        random_state=seed, n_jobs=1, verbosity=-1, deterministic=True,
    )
    log = GlobalSklearnTransformer(FunctionTransformer(np.log1p, np.expm1, check_inverse=False))
    targets = {"scale": [LocalStandardScaler()], "log1p": [log] if log_target else [LocalStandardScaler()],
               "log1p+scale": ([log] if log_target else []) + [LocalStandardScaler()], "none": []}[spec.target]
    return MLForecast(
        models={GLOBAL_MODEL: model},
        freq=frequency,
        lags=lags,
        lag_transforms=transforms,
        date_features=[CALENDAR[c] for c in spec.calendar],
        target_transforms=targets,
    )


def holiday_distance(regressors: pd.DataFrame) -> pd.DataFrame:
    """Periods to the next and since the last holiday (``holiday_days`` > 0) of each row's series, capped at
    HOLIDAY_REACH; the regressors cover history and horizon, so the next holiday is known in advance."""
    x = regressors.sort_values(["unique_id", "ds"], kind="stable")
    position = x.groupby("unique_id", sort=False).cumcount().to_numpy(dtype=float)
    marked = pd.Series(np.where(x[HOLIDAY_COLUMN].to_numpy() > 0, position, np.nan), index=x.index)
    by = x["unique_id"].to_numpy()
    last = marked.groupby(by, sort=False).ffill().to_numpy()
    following = marked.groupby(by, sort=False).bfill().to_numpy()
    reach = float(HOLIDAY_REACH)
    out = x.assign(days_since_holiday=np.nan_to_num(np.minimum(position - last, reach), nan=reach),
                   days_to_holiday=np.nan_to_num(np.minimum(following - position, reach), nan=reach))
    return out.sort_index()


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


def split_statics(regressors: pd.DataFrame | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The regressors without their ``static:`` columns, and those as one row per series (unique_id and the
    attribute names; None when there are none). A series' value is that of its earliest row: rows added past
    a series' end (registry padding) may hold 0 there."""
    if regressors is None:
        return None, None
    names = [c for c in regressors.columns if str(c).startswith(STATIC_PREFIX)]
    if not names:
        return regressors, None
    first = regressors.sort_values(["unique_id", "ds"], kind="stable").drop_duplicates("unique_id")
    statics = first[["unique_id", *names]].rename(columns=lambda c: c.removeprefix(STATIC_PREFIX))
    return regressors.drop(columns=names), statics.reset_index(drop=True)


def features_of(regressors: pd.DataFrame | None, spec: GlobalSpec) -> pd.DataFrame | None:
    """The regressors with the features the spec derives from them (holiday distance); ``closed`` stays."""
    if regressors is None:
        return None
    x = regressors.drop(columns=[c for c in ("is_future",) if c in regressors.columns])
    x = x.astype({"unique_id": str}).assign(ds=lambda d: pd.to_datetime(d["ds"]))
    if spec.holiday_distance and HOLIDAY_COLUMN in x.columns:
        x = holiday_distance(x)
    if CLOSED_COLUMN in x.columns:
        x[CLOSED_COLUMN] = x[CLOSED_COLUMN].fillna(False).astype(bool)
    return x


def forecast_global(
    history: pd.DataFrame,
    regressors: pd.DataFrame | None,
    frequency: str,
    season_length: int,
    horizon: int,
    unique_ids: Sequence[str] | None = None,
    last_known: Sequence[str] = (),
    seed: int = 42,
    statics: pd.DataFrame | None = None,
    spec: GlobalSpec | None = None,
) -> pd.DataFrame:
    """unique_id, ds, y_hat: the next ``horizon`` periods after each series' end, trained on all of history.

    ``regressors``: unique_id, ds and one column per regressor, covering history and the next horizon; a
    ``closed`` column (True on closed periods) is not a feature: those rows get no weight and a forecast of 0.
    ``statics``: unique_id and one column per attribute (text attributes become categories).
    """
    spec = spec or spec_for(frequency)
    train = history[["unique_id", "ds", "y"]].astype({"unique_id": str})
    regressors, carried = split_statics(regressors)
    statics = carried if statics is None else statics
    x = features_of(regressors, spec)
    columns: list[str] = []
    future = None
    if x is not None:
        cutoff = train.groupby("unique_id")["ds"].max()
        x = x[x["unique_id"].isin(cutoff.index)]
        if last_known:
            x = pd.concat([known_at(part, cutoff[uid], last_known) for uid, part in x.groupby("unique_id", sort=True)])
        columns = [c for c in x.columns if c not in ("unique_id", "ds")]
        train = train.merge(x, on=["unique_id", "ds"], how="left")
        train[columns] = train[columns].fillna(0)
        future = x[x["ds"] > x["unique_id"].map(cutoff)]
    weight = None
    if CLOSED_COLUMN in columns:
        weight = "weight"
        train[weight] = (~train.pop(CLOSED_COLUMN).astype(bool)).astype(float)
        closed_future = future[["unique_id", "ds", CLOSED_COLUMN]]
        future = future.drop(columns=CLOSED_COLUMN)
        columns.remove(CLOSED_COLUMN)
    static_names: list[str] = []
    if statics is not None and len(statics.columns) > 1:
        static = statics.astype({"unique_id": str}).drop_duplicates("unique_id").set_index("unique_id")
        static = static.apply(lambda c: c if pd.api.types.is_numeric_dtype(c) else c.astype("category"))
        static_names = list(static.columns)
        train = train.join(static, on="unique_id")
    log_target = spec.target.startswith("log1p") and bool((train["y"] >= 0).all())
    mlf = build_mlforecast(spec, frequency, season_length, horizon, seed, int(train.groupby("unique_id").size().max()),
                      log_target)
    with warnings.catch_warnings():
        # Lags reaching before a series' start are missing by design: LightGBM reads them as unknown.
        warnings.filterwarnings("ignore", message="Found null values")
        mlf.fit(train, static_features=static_names, dropna=spec.strategy == "recursive", weight_col=weight,
                max_horizon=horizon if spec.strategy == "direct" else None)
        ids = sorted(train["unique_id"].unique()) if unique_ids is None else sorted(map(str, unique_ids))
        if future is not None and columns:
            out = mlf.predict(horizon, X_df=future[future["unique_id"].isin(ids)], ids=ids)
        else:
            out = mlf.predict(horizon, ids=ids)
    out = out.rename(columns={GLOBAL_MODEL: "y_hat"})[["unique_id", "ds", "y_hat"]]
    if weight is not None:
        shut = out.merge(closed_future, on=["unique_id", "ds"], how="left")[CLOSED_COLUMN].fillna(False)
        out.loc[shut.to_numpy(dtype=bool), "y_hat"] = 0.0
    return out


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
    statics: pd.DataFrame | None = None,
    spec: GlobalSpec | None = None,
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
        predicted = forecast_global(train, x, frequency, season_length, horizon, ids, (), seed, statics, spec)
        parts.append(predicted.assign(cutoff=cutoff))
    out = pd.concat(parts, ignore_index=True).merge(history, on=["unique_id", "ds"], how="left")
    out["model"] = GLOBAL_MODEL
    out = out[["unique_id", "cutoff", "ds", "y", "model", "y_hat"]]
    return out.sort_values(["unique_id", "cutoff", "ds"], kind="stable").reset_index(drop=True)
