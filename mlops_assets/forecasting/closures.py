"""Declared closures of daily data (settings.closed): periods with known zero demand.

A store closed on Sundays sells nothing on Sundays, and every model but SeasonalNaive forecasts something
there: under SMAPE each such day scores 200 for them and 0 for SeasonalNaive, so the closures, not the open
days, decide the selection. What is known need not be forecast: on a declared closed period the forecast
and its bounds are 0, in the backtest as in the served model, and the backtest does not score it (its rows
carry ``closed`` = true; metrics, combinations and interval calibration skip them). The actuals of closed
periods stay in the history the models are fitted on: nothing is dropped (the global model gives them no
weight: forecasting.global_model).

Closures may also come from the data: ``closed.column`` names a planned series column that is 0 where a
series is closed (an ``open`` flag). Its values live in the regressors (history and horizon), so a closed row
is one of a series and period, not a date for all: ``with_closed`` adds the ``closed`` column to regressors and
``mark_closed``/``zero_closed`` apply it where given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

WEEKDAY_NUMBERS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


@dataclass(frozen=True)
class ClosedPeriods:
    """Weekday numbers (Monday 0) and dates (datetime64[D]) with known zero demand."""

    weekdays: tuple[int, ...] = ()
    dates: tuple[np.datetime64, ...] = ()
    column: str | None = None

    @classmethod
    def of(cls, weekdays: Iterable[str] = (), dates: Iterable = (), column: str | None = None) -> ClosedPeriods:
        unknown = sorted(set(weekdays) - set(WEEKDAY_NUMBERS))
        if unknown:
            raise ValueError(f"unknown weekday(s) {unknown}; use {list(WEEKDAY_NUMBERS)}")
        days = sorted({np.datetime64(pd.Timestamp(d).date(), "D") for d in dates})
        return cls(tuple(sorted(WEEKDAY_NUMBERS[w] for w in set(weekdays))), tuple(days), column)

    @classmethod
    def from_settings(cls, settings) -> ClosedPeriods:
        return cls.of(settings.closed.weekdays, settings.closed.dates, getattr(settings.closed, "column", None))

    def __bool__(self) -> bool:
        # Models pickled before closure columns existed have no such attribute.
        return bool(self.weekdays or self.dates or getattr(self, "column", None))

    def mask(self, ds) -> np.ndarray:
        """True where a period (a date, whatever its time of day) is closed."""
        index = pd.DatetimeIndex(pd.to_datetime(np.asarray(ds)))
        if not self:
            return np.zeros(len(index), dtype=bool)
        closed = np.isin(index.weekday, self.weekdays)
        if self.dates:
            closed |= np.isin(index.normalize().to_numpy().astype("datetime64[D]"), np.asarray(self.dates))
        return closed


    def rows_mask(self, frame: pd.DataFrame) -> np.ndarray:
        """True on the rows (unique_id, ds and, when set, ``column``) that are closed: a declared weekday or
        date, or the closure column at 0. A row without a value of the column is open."""
        closed = self.mask(frame["ds"])
        column = getattr(self, "column", None)
        if column is not None and column in frame.columns:
            closed |= pd.to_numeric(frame[column], errors="coerce").fillna(1.0).to_numpy() == 0
        return closed


def with_closed(regressors: pd.DataFrame | None, closed: ClosedPeriods) -> pd.DataFrame | None:
    """The regressors with a boolean ``closed`` column (declared weekdays, dates and the closure column) for the
    global model, which neither trains on nor forecasts those rows; unchanged when nothing is declared."""
    if regressors is None or not closed:
        return regressors
    column = getattr(closed, "column", None)
    if column is not None and column not in regressors.columns:
        raise ValueError(f"closed.column {column!r} is not among the regressors {list(regressors.columns)}: "
                         "keep it in regressors.use")
    return regressors.assign(closed=closed.rows_mask(regressors))


def closed_rows(frame: pd.DataFrame, closed: ClosedPeriods, regressors: pd.DataFrame | None = None) -> np.ndarray:
    """closed.rows_mask of ``frame``'s rows, the closure column looked up in ``regressors`` by unique_id, ds."""
    if getattr(closed, "column", None) is None or regressors is None or closed.column not in regressors.columns:
        return closed.mask(frame["ds"])
    keys = frame[["unique_id", "ds"]].astype({"unique_id": str})
    values = regressors[["unique_id", "ds", closed.column]].astype({"unique_id": str})
    joined = keys.merge(values.drop_duplicates(["unique_id", "ds"]), on=["unique_id", "ds"], how="left")
    return closed.rows_mask(joined)


def mark_closed(backtest: pd.DataFrame, closed: ClosedPeriods, regressors: pd.DataFrame | None = None) -> pd.DataFrame:
    """The backtest with a ``closed`` column, and forecasts of 0 on the closed periods."""
    mask = closed_rows(backtest, closed, regressors)
    out = backtest.assign(closed=mask)
    if mask.any():
        out.loc[mask, "y_hat"] = 0.0
    return out


def zero_closed(forecasts: pd.DataFrame, closed: ClosedPeriods, regressors: pd.DataFrame | None = None) -> pd.DataFrame:
    """Forecasts (y_hat and every lo_/hi_ bound) set to 0 on the closed periods; other rows unchanged."""
    if not closed or forecasts.empty:
        return forecasts
    mask = closed_rows(forecasts, closed, regressors)
    values = [c for c in forecasts.columns if c == "y_hat" or c.startswith(("lo_", "hi_"))]
    out = forecasts.copy()
    out.loc[mask, values] = 0.0
    return out


def closed_ahead(regressors: pd.DataFrame | None, closed: ClosedPeriods, train_end: pd.Series) -> pd.DataFrame | None:
    """The rows after each series' ``train_end`` (indexed by unique_id) that the closure column marks closed,
    with that column at 0: what a fitted model keeps so that it serves 0 there too. None without a column."""
    column = getattr(closed, "column", None)
    if column is None or regressors is None or column not in regressors.columns:
        return None
    x = regressors[["unique_id", "ds", column]].astype({"unique_id": str})
    ends = pd.to_datetime(x["unique_id"].map(train_end.rename(index=str)))
    shut = (x["ds"] > ends).to_numpy() & closed.rows_mask(x)
    return x.loc[shut, ["unique_id", "ds"]].assign(**{column: 0.0}).sort_values(
        ["unique_id", "ds"], kind="stable").reset_index(drop=True)
