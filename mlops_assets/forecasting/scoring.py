"""Scoring every series of the champion model chunk by chunk, the table swapped in whole at the end.

A chunk is a model group of the registered model (registry.model_parts), so that the run process holds one
group's fitted models at a time, or a slice of the sorted series (``fixed_chunks``). It holds one chunk's
forecasts at a time: each chunk is written as a Parquet part (aside and
renamed), and the table is replaced by DuckDB from the parts in one transaction only when every chunk is
done, so readers see the old forecasts or the new ones, never a mix, and a failure leaves the old ones.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from mlops_assets.warehouse import write_part


def fixed_chunks(unique_ids: Sequence[str], chunk: int) -> list[list[str]]:
    """The sorted series, ``chunk`` at a time."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    ids = sorted(map(str, unique_ids))
    return [ids[k:k + chunk] for k in range(0, len(ids), chunk)]


def score_by_chunk(
    predict: Callable[[pd.DataFrame], pd.DataFrame],
    chunks: Sequence[Sequence[str]],
    horizon: int,
    folder: Path,
    replace: Callable[[str], int],
    log: Callable[[str], None] = lambda _m: None,
    champions: pd.Series | None = None,
) -> int:
    """Forecast ``horizon`` periods of the series by ``predict`` (a pyfunc's: unique_id, h in; unique_id, ds,
    model, model_version, y_hat, bounds out), one chunk of them at a time, then ``replace`` the table with
    the parts (a glob); returns the rows it wrote. ``champions`` (model by unique_id: the series' chosen models)
    adds a ``champion`` column beside ``model``, the model that made the numbers (registry.served).
    """
    chunks = [sorted(map(str, c)) for c in chunks if len(c)]
    total = sum(map(len, chunks))
    if not total:
        raise ValueError("no series to score")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.parquet"):
        stale.unlink()
    started, n_chunks, done = time.perf_counter(), len(chunks), 0
    for k, ids in enumerate(chunks):
        request = pd.DataFrame({"unique_id": ids, "h": horizon})
        predicted = predict(request)
        predicted["ds"] = pd.to_datetime(predicted["ds"])
        predicted["model_version"] = predicted["model_version"].astype(str)
        if champions is not None:
            predicted["champion"] = predicted["unique_id"].map(champions).astype(str)
        values = [c for c in predicted.columns if c == "y_hat" or c.startswith(("lo_", "hi_"))]
        # Every part has the same column types, whatever a chunk's values: DuckDB reads them as one table.
        predicted[values] = predicted[values].astype(float)
        write_part(predicted.sort_values(["unique_id", "ds"], kind="stable"), folder / f"chunk-{k:05d}.parquet")
        done += len(ids)
        elapsed = time.perf_counter() - started
        log(f"scoring: {k + 1}/{n_chunks} chunks, {done:,}/{total:,} series, "
            f"{done / max(elapsed, 1e-9):,.1f} series/s")
    return replace(str(folder / "*.parquet"))


def score_champion(model, chunk_series: int, folder: Path, replace: Callable[[str], int],
                   log: Callable[[str], None] = lambda _m: None) -> tuple[int, int]:
    """Score every series of a loaded champion pyfunc, one model group (cut to ``chunk_series``) at a time;
    the parts are removed once ``replace`` has stored them. Returns (rows, series)."""
    forecaster = model.unwrap_python_model().forecaster
    # One model group at a time, each let go before the next: the process holds one group's fitted models.
    forecaster.kept_groups = 1
    chunks = [c for ids in forecaster.group_series().values() for c in fixed_chunks(ids, chunk_series)]
    rows = score_by_chunk(model.predict, chunks, forecaster.horizon, folder, replace, log,
                         champions=forecaster.series.set_index("unique_id")["model"])
    shutil.rmtree(folder, ignore_errors=True)
    return rows, len(forecaster.series)
