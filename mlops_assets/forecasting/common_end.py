"""The common horizon end: every series is forecast through the latest series end plus the horizon.

A series whose last actual is a few periods before the others' (a store that reports late) would otherwise
be forecast ``horizon`` periods from its own end and stop early, leaving the last periods everyone else
is forecast for without a forecast. It is forecast ``behind`` periods further instead: steps beyond the
trained horizon, which its ``horizon_step`` (periods after its own last actual) shows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def periods_behind(ends: pd.Series, data_end: pd.Timestamp, frequency: str) -> pd.Series:
    """Periods from each series' last actual (``ends``, by unique_id) to ``data_end`` (0 for the latest)."""
    offset = pd.tseries.frequencies.to_offset(frequency)
    ends = pd.to_datetime(ends)
    data_end = pd.Timestamp(data_end)
    counts = {end: len(pd.date_range(end, data_end, freq=offset)) - 1 if end < data_end else 0
              for end in ends.unique()}
    return ends.map(counts).fillna(0).astype("int64")


def steps_through(ends: pd.Series, horizon: int, frequency: str, data_end: pd.Timestamp | None = None) -> pd.Series:
    """Each series' steps to forecast: the horizon plus the periods it is behind ``data_end`` (default: the
    latest of ``ends``)."""
    data_end = pd.to_datetime(ends).max() if data_end is None else data_end
    return periods_behind(ends, data_end, frequency) + int(horizon)


def future_dates(ends: pd.Series, steps: pd.Series, frequency: str) -> pd.DataFrame:
    """unique_id, ds: the ``steps`` periods after each series' end (both indexed by unique_id)."""
    offset = pd.tseries.frequencies.to_offset(frequency)
    steps = steps.reindex(ends.index).astype("int64")
    ds = [pd.Timestamp(end) + offset * int(k) for end, n in zip(ends, steps, strict=True) for k in range(1, n + 1)]
    return pd.DataFrame({"unique_id": np.repeat(ends.index.to_numpy(), steps.to_numpy()),
                         "ds": pd.to_datetime(pd.Series(ds, dtype="datetime64[ns]"))})
