"""A generated series file with a user's own drivers: a price (only its last value is known ahead) and a
promotion flag (planned), with rows after each series' last actual that give the planned future."""

from __future__ import annotations

import numpy as np
import pandas as pd

SERIES_COLUMNS = {"price": "last_known", "promo_flag": "planned"}


def driver_series(n_series: int = 6, n_weeks: int = 60, future_weeks: int = 4, seed: int = 3) -> pd.DataFrame:
    """unique_id, ds, y, price, promo_flag (weekly, Mondays); sales double in promoted weeks and fall as the
    price rises. The last ``future_weeks`` rows of each series have an empty y: the planned future."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2023-01-02", periods=n_weeks + future_weeks, freq="W-MON")
    frames = []
    for i in range(n_series):
        promo = (rng.random(len(ds)) < 0.25).astype(float)
        price = np.round(4.0 + 0.5 * np.sin(np.arange(len(ds)) / 9 + i), 2)
        y = np.round((20 + 3 * i) * (1 + promo) * (4.0 / price) + rng.normal(0, 1, len(ds)), 1)
        y[n_weeks:] = np.nan
        frames.append(pd.DataFrame({"unique_id": f"S{i}", "ds": ds, "y": y, "price": price, "promo_flag": promo}))
    return pd.concat(frames, ignore_index=True)
