"""Declared closures of daily data (settings.closed): periods with known zero demand.

A store closed on Sundays sells nothing on Sundays, and every model but SeasonalNaive forecasts something
there: under SMAPE each such day scores 200 for them and 0 for SeasonalNaive, so the closures, not the open
days, decide the selection. What is known need not be forecast: on a declared closed period the forecast
and its bounds are 0, in the backtest as in the served model, and the backtest does not score it (its rows
carry ``closed`` = true; metrics, combinations and interval calibration skip them). The actuals of closed
periods stay in the history the models are fitted on: nothing is dropped.
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

    @classmethod
    def of(cls, weekdays: Iterable[str] = (), dates: Iterable = ()) -> ClosedPeriods:
        unknown = sorted(set(weekdays) - set(WEEKDAY_NUMBERS))
        if unknown:
            raise ValueError(f"unknown weekday(s) {unknown}; use {list(WEEKDAY_NUMBERS)}")
        days = sorted({np.datetime64(pd.Timestamp(d).date(), "D") for d in dates})
        return cls(tuple(sorted(WEEKDAY_NUMBERS[w] for w in set(weekdays))), tuple(days))

    @classmethod
    def from_settings(cls, settings) -> ClosedPeriods:
        return cls.of(settings.closed.weekdays, settings.closed.dates)

    def __bool__(self) -> bool:
        return bool(self.weekdays or self.dates)

    def mask(self, ds) -> np.ndarray:
        """True where a period (a date, whatever its time of day) is closed."""
        index = pd.DatetimeIndex(pd.to_datetime(np.asarray(ds)))
        if not self:
            return np.zeros(len(index), dtype=bool)
        closed = np.isin(index.weekday, self.weekdays)
        if self.dates:
            closed |= np.isin(index.normalize().to_numpy().astype("datetime64[D]"), np.asarray(self.dates))
        return closed


def mark_closed(backtest: pd.DataFrame, closed: ClosedPeriods) -> pd.DataFrame:
    """The backtest with a ``closed`` column, and forecasts of 0 on the closed periods."""
    mask = closed.mask(backtest["ds"])
    out = backtest.assign(closed=mask)
    if mask.any():
        out.loc[mask, "y_hat"] = 0.0
    return out


def zero_closed(forecasts: pd.DataFrame, closed: ClosedPeriods) -> pd.DataFrame:
    """Forecasts (y_hat and every lo_/hi_ bound) set to 0 on the closed periods; other rows unchanged."""
    if not closed or forecasts.empty:
        return forecasts
    mask = closed.mask(forecasts["ds"])
    values = [c for c in forecasts.columns if c == "y_hat" or c.startswith(("lo_", "hi_"))]
    out = forecasts.copy()
    out.loc[mask, values] = 0.0
    return out
