"""The drift report of gold: features of both windows built a range of series at a time, Evidently's report,
its MLflow run and the row of monitoring.drift_summary that records it.

Evidently takes seconds to import: it is loaded when a report runs, not every time the code location loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import mlflow
import pandas as pd

from mlops_assets.buckets import range_rows, series_ranges
from mlops_assets.settings import Settings
from mlops_assets.warehouse import Connect, table_fingerprint

# The gold columns drift compares (drift.window_features), the only ones it reads.
DRIFT_COLUMNS = ("unique_id", "ds", "y", "avg_unit_price", "promo_share", "category")


@dataclass(frozen=True)
class DriftOutcome:
    drift_share: float
    drifted_columns: list[str]
    method: str
    report: Path | None
    mlflow_run_id: str
    # Per drifted column, when this run computed the report (not when it found one already recorded).
    per_column: pd.DataFrame | None = None
    # The monitoring.drift_summary row that records the report (None: already stored).
    row: pd.DataFrame | None = None
    # The Dagster run that reported it.
    reported_by: str = ""


def input_fingerprint(con: duckdb.DuckDBPyConnection, gold: str, settings: Settings) -> str:
    return f"{table_fingerprint(con, gold)}-{settings.drift.model_dump_json()}"


def already_reported(summary: pd.DataFrame, fingerprint: str, root: Path) -> DriftOutcome | None:
    """The report of this input that a run appended before it stopped, before Dagster recorded it: appending
    again would duplicate it."""
    if "input_fingerprint" not in summary or not (summary["input_fingerprint"] == fingerprint).any():
        return None
    done = summary[summary["input_fingerprint"] == fingerprint].iloc[-1]
    return DriftOutcome(
        float(done["drift_share"]), [c for c in str(done["drifted_columns"] or "").split(",") if c],
        str(done["method"]), root / done["report_path"] if done["report_path"] else None, str(done["mlflow_run_id"]),
        reported_by=str(done["dagster_run_id"]),
    )


def _window(window: tuple[pd.Timestamp, pd.Timestamp]) -> str:
    return f"{window[0]:%Y-%m-%d} to {window[1]:%Y-%m-%d}"


def report_drift(connect: Connect, gold: str, settings: Settings, *, root: Path, report_dir: Path,
                 fingerprint: str, run_tags: dict[str, str], dagster_run_id: str) -> DriftOutcome:
    """Compute the report (HTML in ``report_dir``), log it as an MLflow run; the summary row to append."""
    from mlops_assets.monitoring.drift import drift_of_features

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with connect() as con:
        features, reference, current, notes = features_by_range(con, gold, settings)
    result = drift_of_features(features, reference, current, notes, report_dir=report_dir, stamp=stamp)
    del features
    description = (
        f"Evidently data drift of gold: current {_window(result.current_window)} against reference "
        f"{_window(result.reference_window)}; drift share {result.drift_share:.2f} ({result.method})."
    )
    with mlflow.start_run(run_name=f"drift-{stamp}", description=description,
                          tags={**run_tags, "kind": "drift_report"}) as run:
        mlflow.log_metrics({"drift_share": result.drift_share, "drifted_columns": len(result.drifted_columns)})
        if result.html_path:
            mlflow.log_artifact(str(result.html_path))
    row = pd.DataFrame([{
        "reported_at": pd.Timestamp(datetime.now(UTC).replace(tzinfo=None)),
        "reference_start": result.reference_window[0],
        "reference_end": result.reference_window[1],
        "current_start": result.current_window[0],
        "current_end": result.current_window[1],
        "drift_share": float(result.drift_share),
        "drifted_columns": ",".join(result.drifted_columns),
        "n_columns": int(result.n_columns),
        "method": result.method,
        # Relative to the data directory, which may be moved or copied.
        "report_path": str(result.html_path.relative_to(root)) if result.html_path else "",
        "mlflow_run_id": run.info.run_id,
        "dagster_run_id": dagster_run_id,
        "input_fingerprint": fingerprint,
    }])
    return DriftOutcome(float(result.drift_share), list(result.drifted_columns), result.method, result.html_path,
                        run.info.run_id, result.per_column, row, dagster_run_id)


def features_by_range(con: duckdb.DuckDBPyConnection, gold: str,
                      settings: Settings) -> tuple[pd.DataFrame, list, list, list[str]]:
    """drift's features of every row of both windows, built one range of series at a time; only the rows of
    the windows and the columns drift compares come out of DuckDB."""
    from mlops_assets.monitoring.drift import drift_windows, no_level_note, window_features

    periods = con.execute(f"select distinct ds from {gold} where y is not null order by ds").df()["ds"]
    reference, current, notes = drift_windows(
        periods.to_numpy(), settings.drift.recent_periods, settings.drift.reference_periods)
    have = {c[0] for c in con.execute(f"select * from {gold} limit 0").description}
    columns = ", ".join(c for c in DRIFT_COLUMNS if c in have)
    rows = f"y is not null and ds >= '{pd.Timestamp(reference[0])}'"
    with_category = "category" in have and bool(
        con.execute(f"select count(category) > 0 from {gold} where {rows}").fetchone()[0])
    parts, no_level = [], 0
    for bounds in series_ranges(con, gold, settings.compute.bucket_series):
        features, left_out = window_features(
            range_rows(con, gold, bounds, columns, where=rows), reference, current, with_category)
        no_level += left_out
        # Evidently reads the features only: the ids and periods would double what this process holds.
        parts.append(features.drop(columns=["unique_id", "ds"]).astype(
            {c: "category" for c in ("window", "category") if c in features}))
    features = pd.concat(parts, ignore_index=True)
    features = features.astype({c: object for c in ("window", "category") if c in features})
    return features, reference, current, notes + no_level_note(no_level)
