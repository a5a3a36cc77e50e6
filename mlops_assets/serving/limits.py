"""Bounds on one forecast request, checked before MLflow's scoring server parses it.

Without them a 1.9 MB request (54,000 rows of h=13) made a 170 MB answer and a 1.2 GB server, a deeply
nested body crashed the JSON parser (HTTP 500), and MLflow's cast to int64 accepted ``h: true`` as 1 and
wrapped ``h = 2**63`` into a negative number; ``{"inputs": {"unique_id": [60,000 ids], "h": 13}}`` (a scalar
``h`` repeated on every row) asked for 780,000 forecast rows in 0.5 MB. Each refusal names the limit and
how to stay within it.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlops_assets.settings import ServingSettings

PARQUET = "application/vnd.apache.parquet"
# Exactly what MLflow's scoring server parses; it refuses application/x-parquet with a 415 of its own.
CONTENT_TYPES = ("application/json", "text/csv", PARQUET)


_DEFAULTS = ServingSettings()


@dataclass(frozen=True)
class RequestLimits:
    """Per request: body bytes, request rows, and forecast rows (the sum of h, i.e. horizon x series).

    Set by the settings' ``serving`` section (defaults here) or the serve command's flags."""

    max_body_bytes: int = _DEFAULTS.max_body_bytes
    max_rows: int = _DEFAULTS.max_rows
    max_forecast_rows: int = _DEFAULTS.max_forecast_rows

    @classmethod
    def of(cls, serving: ServingSettings) -> RequestLimits:
        return cls(serving.max_body_bytes, serving.max_rows, serving.max_forecast_rows)


class RequestRefused(Exception):
    """A request refused before the model sees it: HTTP status, MLflow-style error code, and a kind for metrics."""

    def __init__(self, message: str, *, status: int, kind: str, error_code: str):
        super().__init__(message)
        self.message, self.status, self.kind, self.error_code = message, status, kind, error_code

    def as_json(self) -> bytes:
        return json.dumps({"error_code": self.error_code, "message": self.message}).encode()


def too_large(message: str, kind: str) -> RequestRefused:
    return RequestRefused(message, status=413, kind=kind, error_code="RESOURCE_LIMIT_EXCEEDED")


def invalid(message: str) -> RequestRefused:
    return RequestRefused(message, status=400, kind="invalid_request", error_code="INVALID_PARAMETER_VALUE")


@dataclass(frozen=True)
class RequestSummary:
    """What a valid request asks for: one entry per row."""

    series: list[str]
    h: list[int]

    @property
    def forecast_rows(self) -> int:
        return sum(self.h)


def body_limit_message(size: int | None, limits: RequestLimits) -> str:
    got = "is longer than" if size is None else f"has {size:,} bytes; more than"
    return (
        f"the request body {got} the limit of {limits.max_body_bytes:,} bytes (setting serving.max_body_bytes): "
        "split the series over several requests"
    )


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


# MLflow's JSON forms: a body must hold exactly one of them.
JSON_FORMS = ("dataframe_split", "dataframe_records", "inputs", "instances")
# Keys that make MLflow pass the whole body to the model as one table (its unified LLM input), whatever else
# it holds: no forecast request has them, and such a body would escape the forms counted here.
_LLM_KEYS = ("messages", "prompt", "input")
_FORMS_HINT = ('send the rows as {"dataframe_split": {"columns": ["unique_id", "h"], "data": [["a", 13]]}}, '
               '{"dataframe_records": [{"unique_id": "a", "h": 13}]}, {"inputs": {"unique_id": ["a"], "h": [13]}} '
               'or {"inputs": [{"unique_id": "a", "h": 13}]} ("instances" like "inputs")')


def _records(rows: list[Any], form: str) -> tuple[list[Any], list[Any]]:
    if not all(isinstance(r, dict) for r in rows):
        raise invalid(f"{form} must be a list of objects such as {{\"unique_id\": \"a\", \"h\": 13}}; {_FORMS_HINT}")
    return [r.get("unique_id") for r in rows], [r.get("h") for r in rows]


def _broadcast(columns: dict[str, Any], form: str) -> tuple[list[Any], list[Any]]:
    """Columns as MLflow reads them: a single value beside lists is repeated on every row (as pandas does)."""
    lengths = {name: len(v) for name, v in columns.items() if isinstance(v, list)}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name}: {n:,}" for name, n in lengths.items())
        raise invalid(f"the columns of {form} have different lengths ({shown}); give every column one value per row")
    n = next(iter(lengths.values()), 1)

    def column(name: str) -> list[Any]:
        value = columns.get(name)
        return list(value) if isinstance(value, list) else [value] * n

    return column("unique_id"), column("h")


def _split(split: Any) -> tuple[list[Any], list[Any]]:
    if not isinstance(split, dict) or not isinstance(split.get("data"), list):
        raise invalid(f"dataframe_split must be an object with a list \"data\"; {_FORMS_HINT}")
    columns, rows = split.get("columns"), split["data"]
    if not isinstance(columns, list):
        raise invalid(f"dataframe_split needs \"columns\", a list of column names; {_FORMS_HINT}")
    if len(set(map(str, columns))) != len(columns):
        raise invalid(f"dataframe_split names a column twice: {str(columns)[:200]}")
    if not all(isinstance(r, list) and len(r) == len(columns) for r in rows):
        raise invalid(f"every dataframe_split row must be a list of {len(columns)} cells, one per column")
    pick = {name: columns.index(name) for name in ("unique_id", "h") if name in columns}
    return ([r[pick["unique_id"]] if "unique_id" in pick else None for r in rows],
            [r[pick["h"]] if "h" in pick else None for r in rows])


def _columns(payload: Any) -> tuple[list[Any], list[Any]] | None:
    """(unique_id cells, h cells) of a JSON body in any form MLflow would answer; None for a body MLflow refuses
    by itself (not an object, or none of its forms). A form whose rows cannot be counted is refused here."""
    if not isinstance(payload, dict):
        return None
    llm = [key for key in _LLM_KEYS if key in payload]
    if llm:
        raise invalid(f"the body holds {llm[0]!r}, a key of MLflow's LLM input, not a table of rows; {_FORMS_HINT}")
    forms = [form for form in JSON_FORMS if form in payload]
    if not forms:
        return None
    if len(forms) > 1:
        raise invalid(f"the body holds {forms}: give exactly one of {list(JSON_FORMS)}")
    form, value = forms[0], payload[forms[0]]
    if form == "dataframe_split":
        return _split(value)
    if form == "dataframe_records":
        if not isinstance(value, list):
            raise invalid(f"dataframe_records must be a list of objects; {_FORMS_HINT}")
        return _records(value, form)
    if isinstance(value, dict):
        return _broadcast(value, form)
    if isinstance(value, list):
        return _records(value, f"{form} as a list")
    raise invalid(f"{form} must be an object of columns or a list of objects; {_FORMS_HINT}")


def _table_columns(frame: pd.DataFrame) -> tuple[list[Any], list[Any]]:
    n = len(frame)
    ids = frame["unique_id"].tolist() if "unique_id" in frame else [None] * n
    h = frame["h"].tolist() if "h" in frame else [None] * n
    return ids, h


def _whole_h(value: Any, row: int, horizon: int) -> int | None:
    """The row's h as an int in 1..horizon; None when absent (the model names missing columns itself)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        shown = json.dumps(value)[:40] if not isinstance(value, float) else repr(value)
        raise invalid(f"h must be a whole number from 1 to {horizon}, got {shown} in row {row}")
    h = int(value)
    if h < 1:
        raise invalid(f"h must be at least 1, got h={h} in row {row}")
    if h > horizon:
        raise invalid(
            f"h={h} in row {row} is beyond the trained horizon of {horizon} periods; ask for h from 1 to {horizon}"
        )
    return h


def check_request(body: bytes, content_type: str | None, limits: RequestLimits, horizon: int,
                  extra_steps: int = 0) -> RequestSummary:
    """Refuse what would be too large or what MLflow's casts would silently change; else summarize the request.

    Every form MLflow would answer is counted as MLflow reads it (a single ``h`` beside a list of ids is
    repeated on every row) or refused. Bodies MLflow refuses by itself (malformed JSON or CSV, an object
    with none of its forms) are passed on unchecked beyond their size, so that its own 400 answers them.
    """
    if len(body) > limits.max_body_bytes:
        raise too_large(body_limit_message(len(body), limits), "body_too_large")
    kind = media_type(content_type)
    if kind == "application/json":
        try:
            columns = _columns(json.loads(body))
        except RecursionError as error:
            raise invalid("the JSON body is nested too deeply; send a flat table of rows") from error
        except (UnicodeDecodeError, ValueError):
            return RequestSummary([], [])  # MLflow answers malformed JSON with its own 400
    elif kind == "text/csv":
        try:
            columns = _table_columns(pd.read_csv(io.BytesIO(body), dtype={"unique_id": str}))
        except Exception:  # whatever the parser's complaint, MLflow's own parse answers it with a 400
            return RequestSummary([], [])
    elif kind == PARQUET:
        try:
            columns = _table_columns(pd.read_parquet(io.BytesIO(body)))
        except Exception:  # as for CSV: MLflow's own parse answers it
            return RequestSummary([], [])
    else:
        columns = None
    if columns is None:
        return RequestSummary([], [])
    ids, hs = columns
    if len(ids) > limits.max_rows:
        raise too_large(
            f"the request has {len(ids):,} rows; the limit is {limits.max_rows:,} rows per request "
            "(setting serving.max_rows): split it into several requests",
            "too_many_rows",
        )
    for row, uid in enumerate(ids):
        if isinstance(uid, dict | list):
            raise invalid(f"unique_id in row {row} is a JSON {type(uid).__name__}; it must be a string")
    h = [_whole_h(value, row, horizon) for row, value in enumerate(hs)]
    # A series behind the others is answered with up to extra_steps more rows: counted for every row.
    forecast_rows = sum(v + extra_steps for v in h if v is not None)
    if forecast_rows > limits.max_forecast_rows:
        behind = f", plus {extra_steps} for series behind the others" if extra_steps else ""
        raise too_large(
            f"the request asks for up to {forecast_rows:,} forecast rows (the sum of h over {len(h):,} rows"
            f"{behind}); the limit "
            f"is {limits.max_forecast_rows:,} per request (setting serving.max_forecast_rows): ask for fewer series "
            "or a shorter h per request",
            "too_many_forecast_rows",
        )
    return RequestSummary([str(u) for u in ids], [v or 0 for v in h])
