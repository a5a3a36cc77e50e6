"""The serving app's inference log as tables: one row per request, and the forecasts it answered.

The log files rotate away (bounded in size), so the tables keep everything they have seen: new lines are
added, lines already ingested (same request_id) are not duplicated, and nothing is dropped when a file
rotates out. A line that is not a JSON request record is skipped and reported with its file and line.

A served forecast is kept once per series, period and model version (the first time it was served): the
same version always answers the same numbers. Those whose version has no batch forecast of that series and
period in monitoring.forecast_history are scored by monitoring.forecast_accuracy beside the batch ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.serving.inference_log import log_files

COLUMNS = {
    "request_id": "Id of the request (the X-Request-Id header of the answer).",
    "requested_at": "When the request was answered (UTC).",
    "model_version": "Registered version of the model that answered.",
    "status": "HTTP status of the answer.",
    "error_kind": "none, invalid_request, model_error, body_too_large, too_many_rows, too_many_forecast_rows, "
    "unsupported_media_type, timeout or server_error.",
    "error": "The error message returned, if any.",
    "n_rows": "Rows in the request.",
    "n_series": "Distinct series requested.",
    "series": "The series requested, comma-separated (the first 20).",
    "h_max": "Largest horizon asked for.",
    "forecast_rows": "Forecast rows returned.",
    "latency_ms": "Milliseconds from the request's arrival to its answer.",
    "log_file": "Inference log file the line was read from.",
}
_SHOWN_SERIES = 20
FORECAST_KEY = ["unique_id", "ds", "model_version"]


@dataclass
class LogRead:
    requests: pd.DataFrame
    forecasts: pd.DataFrame = field(default_factory=lambda: empty_served())
    skipped: list[dict] = field(default_factory=list)


def _row(record: dict, file: str) -> dict:
    series = [str(s) for s in record.get("series") or []]
    h = [int(v) for v in record.get("h") or []]
    return {
        "request_id": str(record["request_id"]),
        "requested_at": pd.Timestamp(record["time"]).tz_convert("UTC").tz_localize(None),
        "model_version": str(record["model_version"]),
        "status": int(record["status"]),
        "error_kind": str(record.get("error_kind") or "none"),
        "error": record.get("error"),
        "n_rows": len(series),
        "n_series": len(set(series)),
        "series": ",".join(sorted(set(series))[:_SHOWN_SERIES]),
        "h_max": max(h, default=0),
        "forecast_rows": int(record.get("forecast_rows") or 0),
        "latency_ms": float(record["latency_ms"]),
        "log_file": file,
    }


def empty_requests() -> pd.DataFrame:
    types = {"requested_at": "datetime64[ns]", "status": "int64", "n_rows": "int64", "n_series": "int64",
             "h_max": "int64", "forecast_rows": "int64", "latency_ms": "float64"}
    return pd.DataFrame({c: pd.Series(dtype=types.get(c, "object")) for c in COLUMNS})


def _answered(record: dict, requested_at: pd.Timestamp) -> pd.DataFrame | None:
    """The forecasts of a 200 answer, with the step ahead of each (None when the answer was not logged)."""
    predictions = (record.get("answer") or {}).get("predictions")
    if record.get("status") != 200 or not predictions:
        return None
    frame = pd.DataFrame(predictions)
    if "horizon_step" in frame:
        # The model's own count: a series behind the others answers more than h periods.
        steps = frame["horizon_step"].to_numpy(dtype="int64")
    else:
        steps = np.concatenate([np.arange(1, int(h) + 1) for h in record.get("h") or []] or [np.array([], int)])
    if len(steps) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for requested horizons summing to {len(steps)}")
    frame["ds"] = pd.to_datetime(frame["ds"])
    return frame.assign(model_version=frame["model_version"].astype(str), issued_at=requested_at,
                        horizon_step=steps, request_id=str(record["request_id"]))


def read_inference_log(folder: Path) -> LogRead:
    """Every request line of the log files in `folder` (rotated ones included), oldest first."""
    rows, forecasts, skipped = [], [], []
    for path in log_files(folder) if folder.is_dir() else []:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                where = {"file": path.name, "line": number}
                try:
                    record = json.loads(line)
                    row = _row(record, path.name)
                except (ValueError, KeyError, TypeError, AttributeError) as error:
                    skipped.append({**where, "reason": f"{type(error).__name__}: {error}"})
                    continue
                rows.append(row)
                try:
                    answered = _answered(record, row["requested_at"])
                except (ValueError, KeyError, TypeError, AttributeError) as error:
                    # The request still counts; only its forecasts cannot be placed by step.
                    skipped.append({**where, "reason": f"answer not read: {type(error).__name__}: {error}"})
                    continue
                if answered is not None:
                    forecasts.append(answered)
    frame = pd.DataFrame(rows, columns=list(COLUMNS)) if rows else empty_requests()
    served = merge_served(None, pd.concat(forecasts, ignore_index=True)) if forecasts else empty_served()
    return LogRead(frame.astype(empty_requests().dtypes.to_dict()), served, skipped)


def empty_served() -> pd.DataFrame:
    types = {"unique_id": "object", "ds": "datetime64[ns]", "model": "object", "model_version": "object",
             "y_hat": "float64", "issued_at": "datetime64[ns]", "horizon_step": "int64", "request_id": "object"}
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in types.items()})


def merge_served(existing: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """One row per series, period and version: the earliest serve kept; sorted by time, series, period."""
    parts = [p for p in (existing, new) if p is not None and not p.empty]
    if not parts:
        return empty_served()
    combined = pd.concat(parts, ignore_index=True)
    combined = combined.astype({"ds": "datetime64[ns]", "issued_at": "datetime64[ns]"})
    combined = combined.sort_values(["issued_at", "request_id", "unique_id", "ds"])
    return combined.drop_duplicates(FORECAST_KEY, keep="first").reset_index(drop=True)


def unscored_served(history: pd.DataFrame, served: pd.DataFrame) -> pd.DataFrame:
    """Served forecasts that the batch history lacks (same series, period, version), marked source=served."""
    if served.empty:
        return served
    batch_keys = history[FORECAST_KEY].astype({"model_version": str}).assign(ds=lambda d: pd.to_datetime(d["ds"]))
    merged = served.merge(batch_keys.drop_duplicates(), on=FORECAST_KEY, how="left", indicator=True)
    extra = merged.loc[merged["_merge"] == "left_only"].drop(columns=["_merge", "request_id"])
    return extra.assign(source="served").reset_index(drop=True)


def merge_requests(existing: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Existing rows kept as they are, new request ids added; sorted by time then id."""
    parts = [p for p in (existing, new) if p is not None and not p.empty]
    if not parts:
        return empty_requests()
    combined = pd.concat(parts, ignore_index=True).drop_duplicates("request_id", keep="first")
    return combined.sort_values(["requested_at", "request_id"]).reset_index(drop=True)


@dataclass(frozen=True)
class RequestsSummary:
    """Requests, error shares, p50/p95 latency, versions served and errors by kind over every request; the same
    per day in ``by_day`` (None when there is no request)."""

    requests: int = 0
    error_share: float = 0.0
    server_error_share: float = 0.0
    p50_latency_ms: float = 0.0
    p95_latency_ms: float = 0.0
    versions_served: list[str] = field(default_factory=list)
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    by_day: pd.DataFrame | None = None


def requests_summary(requests: pd.DataFrame) -> RequestsSummary:
    """Per day: requests, error share, p50/p95 latency, versions served; and the same over everything."""
    if requests.empty:
        return RequestsSummary()
    errors = requests["status"] >= 400
    by_day = (
        requests.assign(day=requests["requested_at"].dt.strftime("%Y-%m-%d"), failed=errors)
        .groupby("day")
        .agg(
            requests=("request_id", "size"),
            error_share=("failed", "mean"),
            p50_latency_ms=("latency_ms", lambda s: float(np.percentile(s, 50))),
            p95_latency_ms=("latency_ms", lambda s: float(np.percentile(s, 95))),
            versions_served=("model_version", lambda s: ",".join(sorted(set(s), key=int))),
        )
        .reset_index()
    )
    return RequestsSummary(
        requests=len(requests),
        error_share=float(errors.mean()),
        server_error_share=float((requests["status"] >= 500).mean()),
        p50_latency_ms=float(np.percentile(requests["latency_ms"], 50)),
        p95_latency_ms=float(np.percentile(requests["latency_ms"], 95)),
        versions_served=sorted(set(requests["model_version"]), key=int),
        errors_by_kind=requests.loc[errors, "error_kind"].value_counts().sort_index().to_dict(),
        by_day=by_day,
    )
