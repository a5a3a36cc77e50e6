"""The per-series champion models as one forecaster: fit once on the full history, predict on demand.

Each series is forecast by the model that won its backtest (``forecasting.series_champions``). Series that
share a champion are fitted together in one StatsForecast call. The fitted state is plain Python and numpy
objects, so the forecaster pickles: the registered model is one pickled forecaster per model group
(registry.model_parts).

Robustness: a series whose champion raises while fitting, or whose fitted champion gives a non-finite
forecast or interval (e.g. SeasonalNaive on a series shorter than one season), is refitted with
``zoo.FALLBACK_MODEL``. ``series.fitted_model`` and the ``model`` column of the forecasts then name the
model that really produced the numbers.

Intervals: ``intervals="backtest"`` (the product's default) calibrates them on the champions' backtest errors
(``forecasting.intervals``), so fit takes the backtest; ``intervals="model"`` uses each model's own, with
conformal windows fitted to each series' length. Either way widths never shrink from one step to the
next. ``clip``: "auto" clips forecasts and bounds at 0 only when the history has no negative value
(returns), "always" and "never" say what they mean. ``closed`` (forecasting.closures): declared closures are
forecast as 0, bounds included.
"""

from __future__ import annotations

import copy
import numbers
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlops_assets.forecasting.closures import ClosedPeriods, closed_ahead, with_closed, zero_closed
from mlops_assets.forecasting.combinations import final_members
from mlops_assets.forecasting.common_end import future_dates, periods_behind
from mlops_assets.forecasting.intervals import Calibration, calibrate, calibration_method, non_decreasing_bounds
from mlops_assets.forecasting.parallel import CleanWorkerStatsForecast as StatsForecast
from mlops_assets.forecasting.zoo import (
    COMBINATION,
    CONFORMAL_WINDOWS,
    FALLBACK_MODEL,
    GLOBAL_MODEL,
    build_fallback,
    build_models,
    validate_names,
)

_MIN_SERIES_PER_PROCESS_POOL = 200
INTERVAL_METHODS = ("backtest", "model")
CLIP_MODES = ("auto", "always", "never")


class ForecastRequestError(ValueError):
    """A predict request the caller can fix (unknown series, horizon or level out of range)."""


class UnknownSeriesError(ForecastRequestError):
    pass


class HorizonError(ForecastRequestError):
    pass


class LevelError(ForecastRequestError):
    pass


def _level_name(level: float) -> str:
    return str(int(level)) if float(level).is_integer() else str(level)


class ChampionForecaster:
    """Each series' champion model fitted on its full history; predicts any horizon up to `horizon`."""

    def __init__(
        self,
        frequency: str,
        season_length: int,
        horizon: int,
        levels: tuple[int, ...] = (80, 95),
        n_jobs: int = -1,
        intervals: str = "model",
        clip: str = "auto",
        combination_size: int = 3,
        last_known: tuple[str, ...] = (),
        seed: int = 42,
        metric: str = "smape",
        closed: ClosedPeriods | None = None,
    ):
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if intervals not in INTERVAL_METHODS:
            raise ValueError(f"intervals must be one of {INTERVAL_METHODS}, got {intervals!r}")
        if clip not in CLIP_MODES:
            raise ValueError(f"clip must be one of {CLIP_MODES}, got {clip!r}")
        self.intervals = intervals
        self.clip = clip
        self.combination_size = int(combination_size)
        self.last_known = tuple(last_known)
        self.seed = int(seed)
        self.metric = metric
        self.closed = closed or ClosedPeriods()
        self.clipped = clip == "always"
        self._no_clip: frozenset[str] = frozenset()
        self._calibration: Calibration | None = None
        self.frequency = frequency
        self.season_length = int(season_length)
        self.horizon = int(horizon)
        self.levels = tuple(self._check_levels(levels))
        self.n_jobs = n_jobs
        self._uids = pd.Index([], dtype=object)
        self._fitted = np.empty(0, dtype=object)
        self._series = pd.DataFrame(
            {
                "unique_id": pd.Series([], dtype=object),
                "model": pd.Series([], dtype=object),
                "fitted_model": pd.Series([], dtype=object),
                "train_end": pd.Series([], dtype="datetime64[ns]"),
            }
        )

    # ----------------------------------------------------------------------------------------- fit
    def fit(
        self,
        history: pd.DataFrame,
        champions: pd.DataFrame,
        backtest: pd.DataFrame | None = None,
        regressors: pd.DataFrame | None = None,
        calibration: Calibration | None = None,
        data_end: pd.Timestamp | None = None,
    ) -> ChampionForecaster:
        """Fit every champion on its series' full history (series without a champion are ignored).

        ``backtest`` (forecasting.backtest_forecasts) is required with ``intervals="backtest"`` and for
        Combination champions; ``regressors`` (unique_id, ds, one column each, history and the next horizon)
        feed LightGBM. ``calibration``: the intervals' calibration computed beforehand (on every series'
        backtest, when this fit sees only a bucket of them); the backtest is then needed only for the
        Combination champions' rows. ``data_end``: the latest last actual of every series (default: of
        ``history``; pass it when this fit sees a bucket of them): with backtest intervals, a series behind it
        is forecast that many periods further, through the common horizon end (forecasting.common_end).
        """
        if self.intervals == "backtest" and backtest is None and calibration is None:
            raise ValueError("intervals='backtest' calibrates on the backtest: pass fit(..., backtest=...)")
        if calibration is not None and self.intervals != "backtest":
            raise ValueError("a calibration is for intervals='backtest'")
        if COMBINATION in set(champions["model"]) and backtest is None:
            raise ValueError("Combination champions choose their members on the backtest: pass fit(..., backtest=...)")
        precomputed = sorted(set(champions["model"]) & {GLOBAL_MODEL, COMBINATION})
        if precomputed and self.intervals != "backtest":
            raise ValueError(f"{precomputed} have no intervals of their own: use intervals='backtest'")
        _require_columns(history, ["unique_id", "ds", "y"], "history")
        _require_columns(champions, ["unique_id", "model"], "champions")
        champions = champions[["unique_id", "model"]].astype({"unique_id": str, "model": str})
        duplicated = champions.loc[champions["unique_id"].duplicated(), "unique_id"].unique().tolist()
        if duplicated:
            raise ValueError(f"champions has more than one model for series {duplicated[:10]}")
        validate_names(sorted(champions["model"].unique()) or [FALLBACK_MODEL])
        history = history[["unique_id", "ds", "y"]].astype({"unique_id": str})
        history = history[history["unique_id"].isin(champions["unique_id"])]
        missing = sorted(set(champions["unique_id"]) - set(history["unique_id"]))
        if missing:
            raise ValueError(f"{len(missing)} champion series have no history, e.g. {missing[:10]}")
        bad = history.loc[~np.isfinite(history["y"].to_numpy(dtype=float)), "unique_id"].unique()
        if len(bad):
            raise ValueError(
                f"history has missing or infinite y for series {sorted(bad)[:10]}; "
                "exclude them upstream (gold.series_excluded) before fitting"
            )
        history = history.sort_values(["unique_id", "ds"], kind="stable")
        # 'auto' decides per series: a series with returns (a negative period) is forecast unclipped.
        negative = history.groupby("unique_id", sort=True)["y"].min() < 0
        unclipped = {"always": [], "never": list(negative.index), "auto": list(negative.index[negative])}
        self._no_clip = frozenset(map(str, unclipped[self.clip]))
        self.clipped = not self._no_clip
        if calibration is not None:
            self._calibration = calibration
        elif self.intervals == "backtest":
            self._calibration = calibrate(backtest, champions, history, self.levels, self.horizon,
                                          calibration_method(self.frequency))

        train_end = history.groupby("unique_id", sort=True)["ds"].max()
        behind = periods_behind(train_end, train_end.max() if data_end is None else data_end, self.frequency)
        if self.intervals != "backtest":
            # The models' own conformal intervals are fitted for exactly the horizon: no steps beyond it.
            behind[:] = 0
        self._reach = self.horizon + int(behind.max()) if len(behind) else self.horizon
        # A closure column is planned data of the regressors, which a served model does not get: the rows it
        # closes ahead are kept, so that what is served is 0 there as the forecasts table is.
        self._closed_ahead = closed_ahead(regressors, getattr(self, "closed", ClosedPeriods()), train_end)
        uids, fitted, names = [], [], []
        for name, group in champions.groupby("model", sort=True):
            sub = history[history["unique_id"].isin(group["unique_id"])]
            if name == GLOBAL_MODEL:
                group_uids, group_fitted = self._fit_global(history, regressors, sorted(group["unique_id"]))
            elif name == COMBINATION:
                group_uids, group_fitted = self._fit_combination(history, regressors, backtest, sub)
            else:
                group_uids, group_fitted = self._fit_group(sub, name)
            uids.extend(group_uids)
            fitted.extend(group_fitted)
            names.extend([name] * len(group_uids))

        order = np.argsort(np.asarray(uids, dtype=object), kind="stable")
        self._uids = pd.Index(np.asarray(uids, dtype=object)[order])
        self._fitted = np.empty(len(order), dtype=object)
        self._fitted[:] = [fitted[i] for i in order]
        self._series = pd.DataFrame(
            {
                "unique_id": self._uids.to_numpy(),
                "model": np.asarray(names, dtype=object)[order],
                "fitted_model": [
                    FALLBACK_MODEL if _is_fallback(m) else name
                    for m, name in zip(self._fitted, np.asarray(names, dtype=object)[order], strict=True)
                ],
                "train_end": pd.to_datetime(train_end.reindex(self._uids).to_numpy()),
                "behind": behind.reindex(self._uids).to_numpy(dtype="int64"),
            }
        )
        return self

    @classmethod
    def combine(cls, parts: Sequence[ChampionForecaster]) -> ChampionForecaster:
        """One forecaster from forecasters fitted on disjoint sets of series with the same settings.

        It predicts exactly as one forecaster fitted on the union would, where each part's models were fitted
        the same way (the global model's groups: see forecasting.engine); parts fitted with a restricted
        calibration get the merged one back.
        """
        if not parts:
            raise ValueError("nothing to combine")
        first = parts[0]
        config = ("frequency", "season_length", "horizon", "levels", "intervals", "clip", "combination_size",
                  "last_known", "seed", "metric", "closed")
        for part in parts[1:]:
            differing = [key for key in config if getattr(part, key) != getattr(first, key)]
            if differing:
                raise ValueError(f"forecasters with different settings cannot be combined: {differing}")
        uids = np.concatenate([part._uids.to_numpy(dtype=object) for part in parts])
        repeated = pd.Index(uids)[pd.Index(uids).duplicated()].unique().tolist()
        if repeated:
            raise ValueError(f"series fitted in more than one part: {repeated[:10]}")
        order = np.argsort(uids, kind="stable")
        out = copy.copy(first)
        out._uids = pd.Index(uids[order])
        out._fitted = np.empty(len(order), dtype=object)
        out._fitted[:] = list(np.concatenate([part._fitted for part in parts])[order])
        out._series = pd.concat([part._series for part in parts], ignore_index=True).iloc[order].reset_index(drop=True)
        out._no_clip = frozenset().union(*(part._no_clip for part in parts))
        out._reach = max(_reach_of(part) for part in parts)
        ahead = [a for part in parts if (a := getattr(part, "_closed_ahead", None)) is not None]
        out._closed_ahead = pd.concat(ahead, ignore_index=True) if ahead else None
        out.clipped = not out._no_clip
        calibrations = [part._calibration for part in parts]
        if any(c is None for c in calibrations) and any(c is not None for c in calibrations):
            raise ValueError("some parts have a backtest calibration and some do not")
        out._calibration = None if calibrations[0] is None else Calibration.merged(calibrations)
        return out

    def _fit_group(self, sub: pd.DataFrame, name: str) -> tuple[list[str], list]:
        """Fit one champion on its series; with the model's own intervals, by conformal windows that fit."""
        if self.intervals == "backtest":
            return self._fit_windows(sub, name, None)
        sizes = sub.groupby("unique_id", sort=True).size()
        # Each conformal window refits on the data before it, which must still hold a horizon and one more
        # period (WindowAverage averages the last horizon): room for (n - horizon - 1) // horizon windows;
        # statsforecast needs 2, shorter series fall back to Naive (and say so in fitted_model).
        windows = ((sizes - self.horizon - 1) // self.horizon).clip(2, CONFORMAL_WINDOWS)
        uids, fitted = [], []
        for n_windows, members in windows.groupby(windows, sort=True):
            group_uids, group_fitted = self._fit_windows(sub[sub["unique_id"].isin(members.index)], name, n_windows)
            uids.extend(group_uids)
            fitted.extend(group_fitted)
        return uids, fitted

    def _fit_windows(self, sub: pd.DataFrame, name: str, conformal_windows: int | None) -> tuple[list[str], list]:
        model = build_models([name], self.season_length, self.horizon, conformal_windows)[0]
        fallback = build_fallback(self.season_length, self.horizon)
        fallback.alias = FALLBACK_MODEL
        # Worker processes cost about a second to start: not worth it for a small group.
        n_jobs = self.n_jobs if sub["unique_id"].nunique() >= _MIN_SERIES_PER_PROCESS_POOL else 1
        sf = StatsForecast(models=[model], freq=self.frequency, n_jobs=n_jobs, fallback_model=fallback)
        with warnings.catch_warnings():
            # SeasonalNaive warns on series shorter than a season; the NaN check below handles them.
            warnings.filterwarnings("ignore", message="Historical data .* shorter than season_length")
            sf.fit(sub)
        uids = [str(u) for u in sf.uids]
        fitted = list(sf.fitted_[:, 0])
        values = dict(tuple(sub.groupby("unique_id", sort=False)["y"]))
        for i, (uid, fm) in enumerate(zip(uids, fitted, strict=True)):
            if not self._predicts_finite(fm):
                fitted[i] = build_fallback(self.season_length, self.horizon).fit(
                    y=values[uid].to_numpy(dtype=float)
                )
            fitted[i]._fallback = type(fitted[i]) is not type(model)
        return uids, fitted

    def _global_means(self, history: pd.DataFrame, regressors: pd.DataFrame | None, uids: list[str]) -> pd.DataFrame:
        """LightGBM trained on every series' history: the next horizon of ``uids`` (rows: series, columns: steps)."""
        # Imported here: a served model holds LightGBM's forecasts, not LightGBM, and loads without it.
        from mlops_assets.forecasting.global_model import forecast_global

        reach = _reach_of(self)
        # Closed periods: the global model neither trains on nor forecasts them.
        x = with_closed(regressors, getattr(self, "closed", ClosedPeriods()))
        predicted = forecast_global(history, padded_regressors(x, history, reach, self.frequency),
                                    self.frequency, self.season_length, reach, uids, self.last_known, self.seed)
        # By step, not by date: series that end on different dates (one a few periods behind) share no dates,
        # and a table by date gave every series but the latest-ending ones a NaN first step, so the champion
        # was replaced by the fallback.
        predicted = predicted.sort_values(["unique_id", "ds"], kind="stable")
        predicted["step"] = predicted.groupby("unique_id", sort=False).cumcount() + 1
        return predicted.pivot(index="unique_id", columns="step", values="y_hat").reindex(uids)

    def _fit_global(self, history: pd.DataFrame, regressors: pd.DataFrame | None, uids: list[str]):
        means = self._global_means(history, regressors, uids)
        return self._precomputed(history, list(means.index), means.to_numpy())

    def _fit_combination(self, history, regressors, backtest: pd.DataFrame, sub: pd.DataFrame):
        """Each series' median of its best models' forecasts (forecasting.combinations), fitted here."""
        uids = sorted(sub["unique_id"].unique())
        members = final_members(backtest[backtest["unique_id"].astype(str).isin(uids)], self.combination_size,
                                getattr(self, "metric", "smape"), history, self.season_length)
        forecasts = []
        for name, group in members.groupby("model", sort=True):
            ids = sorted(group["unique_id"])
            if name == GLOBAL_MODEL:
                means = self._global_means(history, regressors, ids).to_numpy()
            else:
                group_uids, group_fitted = self._fit_windows(sub[sub["unique_id"].isin(ids)], name, None)
                means = np.vstack([fm.predict(h=_reach_of(self))["mean"] for fm in group_fitted])
                ids = group_uids
            forecasts.append(pd.DataFrame(means, index=pd.Index(ids, name="unique_id")))
        combined = pd.concat(forecasts).groupby(level="unique_id").median().reindex(uids)
        return self._precomputed(sub, uids, combined.to_numpy())

    def _precomputed(self, history: pd.DataFrame, uids: list[str], means: np.ndarray) -> tuple[list[str], list]:
        values = dict(tuple(history.groupby("unique_id", sort=False)["y"]))
        fitted = []
        for uid, mean in zip(uids, means, strict=True):
            model = _Precomputed(mean)
            if not self._predicts_finite(model):
                model = build_fallback(self.season_length, self.horizon).fit(y=values[uid].to_numpy(dtype=float))
            model._fallback = not isinstance(model, _Precomputed)
            fitted.append(model)
        return list(uids), fitted

    def _own_levels(self) -> list[float] | None:
        """The levels to ask the fitted models for: none when the intervals come from the backtest."""
        return None if getattr(self, "_calibration", None) is not None else list(self.levels)

    def _predicts_finite(self, fitted_model) -> bool:
        try:
            res = fitted_model.predict(h=_reach_of(self), level=self._own_levels())
        except Exception:  # noqa: BLE001 - any failure means: use the fallback for this series
            return False
        return all(np.isfinite(np.asarray(v, dtype=float)).all() for v in res.values())

    # ------------------------------------------------------------------------------------- predict
    @property
    def series(self) -> pd.DataFrame:
        """unique_id, model (the champion), fitted_model (differs when the fallback was used), train_end."""
        return self._series.copy()

    def predict(
        self,
        unique_ids: Sequence[str] | None = None,
        h: int | None = None,
        levels: Sequence[float] | None = None,
    ) -> pd.DataFrame:
        """Forecasts h periods after each series' train_end, with lo_<level>/hi_<level> bounds; a series
        ``behind`` the latest one (see fit) gets that many more, so every series ends on the same date.
        ``horizon_step``: the period's number after the series' train_end (above the horizon: the extra steps).

        Bounds widen (or stay) from one step to the next; forecasts and bounds are clipped at 0 except for
        the series the ``clip`` rule leaves unclipped (``clipped`` is False when there are any), and are 0 on
        declared closed periods.
        """
        h = self.horizon if h is None else h
        if isinstance(h, bool) or not isinstance(h, numbers.Integral):
            raise HorizonError(f"h must be an integer between 1 and {self.horizon}, got {h!r}")
        if h < 1 or h > self.horizon:
            raise HorizonError(
                f"h={h} is beyond the trained horizon of {self.horizon}"
                if h > self.horizon
                else f"h={h} must be at least 1"
            )
        levels = self._check_levels(self.levels if levels is None else levels)
        positions = self._positions(unique_ids)

        series = self._series.iloc[positions]
        # A series behind the others (forecasting.common_end) gets its extra steps: through the common end.
        behind = series["behind"].to_numpy(dtype="int64") if "behind" in series else np.zeros(len(series), "int64")
        steps = h + behind
        n = len(positions)
        width = int(steps.max()) if n else h
        # Predict at least the trained horizon and cut: conformal scores are stored for exactly `horizon` steps.
        mean = np.full((n, width), np.nan)
        bounds = {(side, lv): np.full((n, width), np.nan) for lv in levels for side in ("lo", "hi")}
        own = self._own_levels()
        for row, pos in enumerate(positions):
            k = int(steps[row])
            res = self._fitted[pos].predict(h=max(self.horizon, k), level=sorted(levels) if own and levels else None)
            mean[row, :k] = res["mean"][:k]
            if own:
                for (side, lv), out in bounds.items():
                    out[row, :k] = res[f"{side}-{_level_name(lv)}"][:k]
        uids = self._uids[positions]
        for lv in levels:
            if own:
                lo, hi = bounds[("lo", lv)], bounds[("hi", lv)]
            else:
                half = self._calibration.half_widths(uids, width, lv)
                lo, hi = mean - half, mean + half
            bounds[("lo", lv)], bounds[("hi", lv)] = non_decreasing_bounds(mean, lo, hi)

        offset = pd.tseries.frequencies.to_offset(self.frequency)
        train_end = pd.DatetimeIndex(series["train_end"])
        ds = np.column_stack([(train_end + offset * k).to_numpy() for k in range(1, width + 1)]) if n else []
        kept = (np.arange(width)[None, :] < steps[:, None]).ravel()
        out = pd.DataFrame(
            {
                "unique_id": np.repeat(series["unique_id"].to_numpy(), width),
                "ds": pd.to_datetime(np.ravel(ds)).astype("datetime64[ns]"),
                "model": np.repeat(series["fitted_model"].to_numpy(), width),
                "horizon_step": np.tile(np.arange(1, width + 1, dtype="int64"), n),
                "y_hat": mean.ravel(),
            }
        )
        for lv in levels:
            for side in ("lo", "hi"):
                out[f"{side}_{_level_name(lv)}"] = bounds[(side, lv)].ravel()
        out = out[kept].reset_index(drop=True)
        keep = out["unique_id"].isin(getattr(self, "_no_clip", frozenset())).to_numpy()
        values = [c for c in out.columns if c == "y_hat" or c.startswith(("lo_", "hi_"))]
        out.loc[~keep, values] = out.loc[~keep, values].clip(lower=0)
        # Models pickled before closures (or closure columns) existed have no such attributes.
        out = zero_closed(out, getattr(self, "closed", ClosedPeriods()), getattr(self, "_closed_ahead", None))
        return out.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)

    def _positions(self, unique_ids: Sequence[str] | None) -> np.ndarray:
        return np.arange(len(self._uids)) if unique_ids is None else known_positions(self._uids, unique_ids)

    @staticmethod
    def _check_levels(levels: Sequence[float]) -> list[float]:
        if isinstance(levels, (str, numbers.Number)):
            levels = [levels]
        out = []
        for lv in levels:
            if isinstance(lv, bool) or not isinstance(lv, numbers.Real) or not 0 < lv < 100:
                raise LevelError(f"interval level {lv!r} is not a number strictly between 0 and 100")
            out.append(float(lv) if not float(lv).is_integer() else int(lv))
        if len(set(out)) != len(out):
            raise LevelError(f"interval levels {list(levels)} contain duplicates")
        return out


def _reach_of(forecaster: ChampionForecaster) -> int:
    """The steps the forecaster's fitted models forecast (models pickled before lagging series were forecast
    through the common end have none beyond the horizon)."""
    return int(getattr(forecaster, "_reach", forecaster.horizon))


def padded_regressors(regressors: pd.DataFrame | None, history: pd.DataFrame, steps: int,
                      frequency: str) -> pd.DataFrame | None:
    """The regressors with a row for each of the ``steps`` periods after every series' end: mlforecast needs
    every series' future rows over the whole forecast, and a series that ends first is forecast past its
    horizon with the others (its extra steps are cut). A missing period is 0 (nothing planned; a
    ``last_known`` column is its last value anyway, forecasting.global_model.known_at)."""
    if regressors is None:
        return None
    ends = history.astype({"unique_id": str}).groupby("unique_id", sort=True)["ds"].max()
    wanted = future_dates(ends, pd.Series(int(steps), index=ends.index), frequency)
    x = regressors.astype({"unique_id": str})
    missing = wanted.merge(x[["unique_id", "ds"]], on=["unique_id", "ds"], how="left", indicator=True)
    missing = missing.loc[missing["_merge"] == "left_only", ["unique_id", "ds"]]
    if missing.empty:
        return regressors
    filler = missing.reindex(columns=x.columns).fillna({c: 0.0 for c in x.columns if c not in ("unique_id", "ds")})
    if "is_future" in x.columns:
        filler["is_future"] = True
    filler = filler.astype({c: x[c].dtype for c in x.columns if c not in ("unique_id", "ds")})
    return pd.concat([x, filler], ignore_index=True).sort_values(["unique_id", "ds"], kind="stable", ignore_index=True)


class _Precomputed:
    """A forecast computed when fitting (the global model's, a combination's): predict cuts its first h steps."""

    def __init__(self, mean: np.ndarray):
        self.mean = np.asarray(mean, dtype=float)

    def predict(self, h: int, X=None, level=None) -> dict[str, np.ndarray]:  # noqa: N803 - statsforecast's name
        return {"mean": self.mean[:h]}


def known_positions(known: pd.Index, unique_ids: Sequence[str] | str) -> np.ndarray:
    """Positions in ``known`` of the requested series, distinct and sorted; UnknownSeriesError names the others."""
    if isinstance(unique_ids, str):
        unique_ids = [unique_ids]
    requested = pd.Index([str(u) for u in unique_ids]).unique().sort_values()
    positions = known.get_indexer(requested)
    unknown = requested[positions < 0].tolist()
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise UnknownSeriesError(
            f"unknown unique_id(s): {shown}{more}; the model knows {len(known)} series (see its `series` table)"
        )
    return positions


def _is_fallback(fitted_model) -> bool:
    return bool(getattr(fitted_model, "_fallback", False))


def _require_columns(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def forecaster_for(settings, n_jobs: int = -1) -> ChampionForecaster:
    """An unfitted forecaster configured by the settings (frequency, horizon, levels, intervals, clipping)."""
    return ChampionForecaster(
        n_jobs=n_jobs,
        frequency=settings.frequency,
        season_length=settings.season,
        horizon=settings.horizon,
        levels=tuple(settings.interval_levels),
        intervals=settings.intervals.method,
        clip=settings.intervals.clip,
        combination_size=settings.combination_size,
        last_known=tuple(settings.regressors.unknown_future),
        seed=settings.seed,
        metric=settings.selection.metric,
        closed=ClosedPeriods.from_settings(settings),
    )


def forecast_champions(
    history: pd.DataFrame,
    champions: pd.DataFrame,
    settings,
    backtest: pd.DataFrame | None = None,
    regressors: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Fit every series' champion and forecast settings.horizon periods with settings.interval_levels."""
    return forecaster_for(settings).fit(history, champions, backtest, regressors).predict()
