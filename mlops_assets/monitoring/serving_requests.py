"""The serving app's inference log as a table: one row per request, and what people ask of it.

The log files rotate away (bounded in size), so the table keeps every request it has seen: new lines are
added, lines already ingested (same request_id) are not duplicated, and nothing is dropped when a file
rotates out. A line that is not a JSON request record is skipped and reported with its file and line.
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


@dataclass
class LogRead:
    requests: pd.DataFrame
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


def read_inference_log(folder: Path) -> LogRead:
    """Every request line of the log files in `folder` (rotated ones included), oldest first."""
    rows, skipped = [], []
    for path in log_files(folder) if folder.is_dir() else []:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                try:
                    rows.append(_row(json.loads(line), path.name))
                except (ValueError, KeyError, TypeError, AttributeError) as error:
                    skipped.append({"file": path.name, "line": number, "reason": f"{type(error).__name__}: {error}"})
    frame = pd.DataFrame(rows, columns=list(COLUMNS)) if rows else empty_requests()
    return LogRead(frame.astype(empty_requests().dtypes.to_dict()), skipped)


def merge_requests(existing: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Existing rows kept as they are, new request ids added; sorted by time then id."""
    parts = [p for p in (existing, new) if p is not None and not p.empty]
    if not parts:
        return empty_requests()
    combined = pd.concat(parts, ignore_index=True).drop_duplicates("request_id", keep="first")
    return combined.sort_values(["requested_at", "request_id"]).reset_index(drop=True)


def requests_summary(requests: pd.DataFrame) -> dict[str, object]:
    """Per day: requests, error share, p50/p95 latency, versions served; and the same over everything."""
    if requests.empty:
        return {"requests": 0}
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
    return {
        "requests": len(requests),
        "error_share": float(errors.mean()),
        "server_error_share": float((requests["status"] >= 500).mean()),
        "p50_latency_ms": float(np.percentile(requests["latency_ms"], 50)),
        "p95_latency_ms": float(np.percentile(requests["latency_ms"], 95)),
        "versions_served": sorted(set(requests["model_version"]), key=int),
        "errors_by_kind": requests.loc[errors, "error_kind"].value_counts().sort_index().to_dict(),
        "by_day": by_day,
    }
