"""Quiet by default: what a person sees on the console while the graph runs.

- Dagster's console logger prints every engine event at DEBUG (about 140 lines for one run of the graph).
  ``console_logger`` prints what the assets say (INFO and up) and one line per finished or failed step,
  with a step count when the caller knows the total; ``MLOPS_LOG_LEVEL=DEBUG`` brings every event back.
- Third-party warnings and log lines that a user of this product cannot act on are silenced here, each
  with the reason; anything else still shows.

Nothing here changes what Dagster stores: the UI keeps every event of every run.
"""

from __future__ import annotations

import builtins
import logging
import os
import sys
import time
import warnings
from typing import Any, TextIO

import dagster as dg

LOG_LEVEL_ENV = "MLOPS_LOG_LEVEL"
_STEP_EVENTS = {"STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED", "RUN_FAILURE"}

# (logger, message start, why the user cannot act on it)
_QUIET_LOG_LINES = [
    ("mlflow.pyfunc", "Passing a Python object as `python_model`",
     "the champion is logged as a Python object on purpose; the registry holds its code version"),
    ("mlflow.pyfunc", "Validating input example against model signature", "routine step of log_model"),
    ("mlflow.store.db.utils", "Creating initial MLflow database tables", "first use of a new SQLite store"),
    ("mlflow.store.db.utils", "Updating database tables", "schema migration of a new SQLite store"),
    ("mlflow.models.model", "Model logged without a signature", "the champion logs its own signature"),
]
# (category name, message start, why)
_QUIET_WARNINGS = [
    ("BetaWarning", "Parameter `include_sources`", "raised by Dagster's own `--select` parsing"),
    ("SupersessionWarning", "Function `asset_materialize_command`",
     "`dg launch` needs the dagster-dg-cli package this project does not install"),
    ("UserWarning", "Hint: Inferred schema contains integer column", "MLflow's advice on model signatures"),
]


def log_level() -> int:
    """The console threshold: ``MLOPS_LOG_LEVEL`` (DEBUG, INFO, WARNING...), INFO by default."""
    name = os.environ.get(LOG_LEVEL_ENV, "INFO").upper()
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        raise ValueError(f"{LOG_LEVEL_ENV}={name!r} is not a log level; use DEBUG, INFO, WARNING or ERROR")
    return level


class _StartsWith(logging.Filter):
    def __init__(self, starts: list[str]) -> None:
        super().__init__()
        self.starts = tuple(starts)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


def quiet_third_party() -> None:
    """Silence what a user cannot act on; idempotent, and a no-op at ``MLOPS_LOG_LEVEL=DEBUG``."""
    if log_level() <= logging.DEBUG:
        return
    by_logger: dict[str, list[str]] = {}
    for name, start, _why in _QUIET_LOG_LINES:
        by_logger.setdefault(name, []).append(start)
    for name, starts in by_logger.items():
        target = logging.getLogger(name)
        target.filters = [f for f in target.filters if not isinstance(f, _StartsWith)]
        target.addFilter(_StartsWith(starts))
    for category, start, _why in _QUIET_WARNINGS:
        found = getattr(dg, category, None) or getattr(builtins, category)
        warnings.filterwarnings("ignore", message=f"^{_escape(start)}", category=found)


def _escape(text: str) -> str:
    return "".join(f"\\{c}" if c in ".^$*+?{}[]\\|()" else c for c in text)


class StepFormatter(logging.Formatter):
    """``12:04:31 [ 7/31] gold_tables: message`` for asset messages and step ends; Dagster's own lines else."""

    def __init__(self, total_steps: int = 0, verbose: bool = False) -> None:
        super().__init__()
        self.total_steps = total_steps
        self.verbose = verbose
        self.done = 0
        self.started = time.monotonic()

    def keep(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, "dagster_meta", None)
        event = meta.get("dagster_event") if meta else None
        if self.verbose or event is None:
            return record.levelno >= logging.INFO or self.verbose
        return event.event_type_value in _STEP_EVENTS or record.levelno >= logging.WARNING

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        message = meta.get("orig_message", record.getMessage())
        step = meta.get("step_key") or meta.get("job_name") or "run"
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        kind = event.event_type_value if event is not None and not self.verbose else None
        if kind in {"STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"}:
            self.done += 1
            count = f"[{self.done:>2}/{self.total_steps}] " if self.total_steps else ""
            return f"{stamp} {count}{step}: {_step_end(event, kind)}"
        level = "" if record.levelno == logging.INFO else f"{record.levelname}: "
        return f"{stamp} {step}: {level}{message}"


def _step_end(event: object, kind: str) -> str:
    data = getattr(event, "event_specific_data", None)
    if kind == "STEP_SUCCESS":
        duration = getattr(data, "duration_ms", None)
        return f"done in {duration / 1000:.1f} s" if duration is not None else "done"
    if kind == "STEP_SKIPPED":
        return "skipped: a step it depends on failed or was skipped"
    error = getattr(data, "error", None)
    if error is None:
        return "FAILED: see the run in the Dagster UI"
    return "FAILED: " + raised_error(error).message.strip()


def raised_error(error: Any) -> Any:
    """The exception our code raised, out of Dagster's errors wrapped around it (a SerializableErrorInfo).

    Not the innermost one: WarehouseBusy, raised ``from`` DuckDB's IOException, names the holder and what to do.
    """
    while error.cause is not None and error.message.startswith("dagster."):
        error = error.cause
    return error


class _KeepFilter(logging.Filter):
    def __init__(self, formatter: StepFormatter) -> None:
        super().__init__()
        self.formatter = formatter

    def filter(self, record: logging.LogRecord) -> bool:
        return self.formatter.keep(record)


def step_logger(name: str, stream: TextIO | None = None, total_steps: int = 0) -> logging.Logger:
    """A Python logger that writes the concise run log to ``stream`` (stderr by default)."""
    quiet_third_party()
    level = log_level()
    formatter = StepFormatter(total_steps=total_steps, verbose=level <= logging.DEBUG)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_KeepFilter(formatter))
    logger = logging.Logger(name, level=logging.DEBUG)  # the filter decides: step events arrive at DEBUG
    logger.addHandler(handler)
    return logger


@dg.logger(
    config_schema={"total_steps": dg.Field(int, default_value=0, description="Steps in the run (0: unknown).")},
    description="Asset messages and one line per finished step; every engine event with MLOPS_LOG_LEVEL=DEBUG.",
)
def console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    return step_logger("mlops_assets", total_steps=init_context.logger_config["total_steps"])
