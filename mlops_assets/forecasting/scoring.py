"""Scoring every series of the champion model chunk by chunk, the table swapped in whole at the end.

The run process holds one chunk's forecasts at a time: each chunk is written as a Parquet part (aside and
renamed), and the table is replaced by DuckDB from the parts in one transaction only when every chunk is
done, so readers see the old forecasts or the new ones, never a mix, and a failure leaves the old ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from mlops_assets.forecasting.engine import write_part


def score_by_chunk(
    predict: Callable[[pd.DataFrame], pd.DataFrame],
    unique_ids: Sequence[str],
    horizon: int,
    chunk: int,
    folder: Path,
    replace: Callable[[str], int],
    log: Callable[[str], None] = lambda _m: None,
) -> int:
    """Forecast ``horizon`` periods of ``unique_ids`` by ``predict`` (a pyfunc's: unique_id, h in; unique_id,
    ds, model, model_version, y_hat, bounds out), ``chunk`` series at a time, then ``replace`` the table with
    the parts (a glob); returns the rows it wrote.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    ids = sorted(map(str, unique_ids))
    if not ids:
        raise ValueError("no series to score")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.parquet"):
        stale.unlink()
    started, n_chunks = time.perf_counter(), -(-len(ids) // chunk)
    for k in range(n_chunks):
        request = pd.DataFrame({"unique_id": ids[k * chunk:(k + 1) * chunk], "h": horizon})
        predicted = predict(request)
        predicted["ds"] = pd.to_datetime(predicted["ds"])
        predicted["model_version"] = predicted["model_version"].astype(str)
        values = [c for c in predicted.columns if c == "y_hat" or c.startswith(("lo_", "hi_"))]
        # Every part has the same column types, whatever a chunk's values: DuckDB reads them as one table.
        predicted[values] = predicted[values].astype(float)
        write_part(predicted.sort_values(["unique_id", "ds"], kind="stable"), folder / f"chunk-{k:05d}.parquet")
        elapsed = time.perf_counter() - started
        log(f"scoring: {k + 1}/{n_chunks} chunks, {min((k + 1) * chunk, len(ids)):,}/{len(ids):,} series, "
            f"{min((k + 1) * chunk, len(ids)) / max(elapsed, 1e-9):,.1f} series/s")
    return replace(str(folder / "*.parquet"))
