"""Monitoring: Evidently drift of the gold table, and forecast accuracy once actuals arrive."""


import hashlib
import shutil
from datetime import UTC, datetime

import dagster as dg
import duckdb
import mlflow
import pandas as pd

from mlops_assets import schemas
from mlops_assets.defs.automation import downstream_condition
from mlops_assets.defs.meta import (
    OWNERS,
    column_schema,
    latest_metadata,
    metadata_value,
    pandera_check,
    preview,
    table_metadata,
)
from mlops_assets.monitoring.accuracy import (
    SUMMARY_KEYS,
    issue_already_stored,
    issue_sql,
    realized_vs_backtest,
    score_forecasts,
    summary_sql,
)
from mlops_assets.monitoring.serving_requests import COLUMNS as REQUEST_COLUMNS
from mlops_assets.monitoring.serving_requests import (
    merge_requests,
    merge_served,
    read_inference_log,
    requests_summary,
    unscored_served,
)
from mlops_assets.resources import MlflowTracking, ProjectResource, Warehouse
from mlops_assets.settings import Settings
from mlops_assets.warehouse import require_table, series_bucket, series_ranges, table_exists, write_part

GOLD = "gold.sales_data_for_forecast"
FORECASTS = "forecasting.forecasts"
CHAMPIONS = "forecasting.series_champions"
ACCURACY_ORDER = "issued_at, unique_id, ds, model, model_version"
DRIFT_SUMMARY = "monitoring.drift_summary"
# The gold columns drift compares (drift.window_features), the only ones it reads.
DRIFT_COLUMNS = ("unique_id", "ds", "y", "avg_unit_price", "promo_share", "category")
FORECAST_HISTORY = "monitoring.forecast_history"
FORECAST_ACCURACY = "monitoring.forecast_accuracy"
SERVING_REQUESTS = "monitoring.serving_requests"
SERVED_FORECASTS = "monitoring.served_forecasts"
SERVING_REQUESTS_KEY = dg.AssetKey(["monitoring", "serving_requests"])
SERVED_FORECASTS_KEY = dg.AssetKey(["monitoring", "served_forecasts"])
DRIFT_CHECK = "drift_within_threshold"
CONTRACT_CHECK = "matches_contract"
ACCURACY_CHECK = "realized_accuracy_within_promise"
DRIFT_REPORT_KEY = dg.AssetKey(["monitoring", "drift_report"])
DRIFT_SUMMARY_KEY = dg.AssetKey(["monitoring", "drift_summary"])



def _window(window: tuple[pd.Timestamp, pd.Timestamp]) -> str:
    return f"{window[0]:%Y-%m-%d} to {window[1]:%Y-%m-%d}"

@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["monitoring", "drift_report"],
            description="Evidently data-drift report: the last periods of the gold table against the year "
            "before, on sales relative to each series' level, price, promotion share, zero periods and the "
            "category mix. Each materialization keeps its own HTML report.",
            deps=[["gold", "sales_data_for_forecast"]],
            group_name="monitoring",
            kinds={"evidently", "mlflow"},
            owners=OWNERS,
            automation_condition=downstream_condition(),
        ),
        dg.AssetSpec(
            ["monitoring", "drift_summary"],
            description="One row per drift report ever made: when, which windows, the drift share and the "
            "drifted columns. History: rows are only appended.",
            deps=[["gold", "sales_data_for_forecast"]],
            group_name="monitoring",
            kinds={"duckdb"},
            owners=OWNERS,
            automation_condition=downstream_condition(),
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            DRIFT_CHECK,
            asset=DRIFT_REPORT_KEY,
            description="Warns when the share of drifted columns passes the threshold in settings.",
        )
    ],
    can_subset=False,
)
def drift_report(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    warehouse: Warehouse,
    mlflow_tracking: MlflowTracking,
):
    settings = project.settings
    threshold = settings.drift.threshold
    with warehouse.connection() as con:
        require_table(con, GOLD)
        fingerprint = f"{table_fingerprint(con, GOLD)}-{settings.drift.model_dump_json()}"
    previous = latest_metadata(context, DRIFT_REPORT_KEY)
    if metadata_value(previous, "input_fingerprint") == fingerprint:
        context.log.info("gold unchanged since the last drift report: kept it, appended nothing")
        yield dg.MaterializeResult(asset_key=DRIFT_REPORT_KEY, metadata=previous)
        yield dg.MaterializeResult(
            asset_key=["monitoring", "drift_summary"], metadata=latest_metadata(context, DRIFT_SUMMARY_KEY)
        )
        yield _drift_check(metadata_value(previous, "drift_share"), metadata_value(previous, "drifted_columns"),
                           threshold)
        return
    summary = warehouse.read(DRIFT_SUMMARY, missing_ok=True)
    if "input_fingerprint" in summary and (summary["input_fingerprint"] == fingerprint).any():
        # A run appended this report, then stopped before Dagster recorded it: appending again would duplicate it.
        done = summary[summary["input_fingerprint"] == fingerprint].iloc[-1]
        drifted = [c for c in str(done["drifted_columns"] or "").split(",") if c]
        context.log.info(f"this gold was already reported by run {done['dagster_run_id']}: appended nothing")
        yield dg.MaterializeResult(asset_key=DRIFT_REPORT_KEY, metadata={
            "drift_share": float(done["drift_share"]),
            "drifted_columns": dg.MetadataValue.json(drifted),
            "method": str(done["method"]),
            "report": dg.MetadataValue.path(str(project.paths.root / done["report_path"]))
            if done["report_path"] else "",
            "mlflow_run_id": str(done["mlflow_run_id"]),
            "input_fingerprint": fingerprint,
        })
        yield dg.MaterializeResult(asset_key=DRIFT_SUMMARY_KEY, metadata=table_metadata(summary, DRIFT_SUMMARY))
        yield _drift_check(float(done["drift_share"]), drifted, threshold)
        return
    # Evidently takes seconds to import: load it when a report runs, not every time the code location loads.
    from mlops_assets.monitoring.drift import drift_of_features

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    features, reference, current, notes = _drift_features(warehouse, settings)
    result = drift_of_features(features, reference, current, notes, report_dir=project.paths.reports / "drift",
                               stamp=stamp)
    del features
    mlflow_tracking.activate()
    description = (
        f"Evidently data drift of gold: current {_window(result.current_window)} against reference "
        f"{_window(result.reference_window)}; drift share {result.drift_share:.2f} ({result.method})."
    )
    with mlflow.start_run(run_name=f"drift-{stamp}", description=description,
                          tags={**mlflow_tracking.run_tags(context), "kind": "drift_report"}) as run:
        mlflow.log_metrics({"drift_share": result.drift_share, "drifted_columns": len(result.drifted_columns)})
        if result.html_path:
            mlflow.log_artifact(str(result.html_path))
    row = pd.DataFrame(
        [
            {
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
                "report_path": str(result.html_path.relative_to(project.paths.root)) if result.html_path else "",
                "mlflow_run_id": run.info.run_id,
                "dagster_run_id": context.run_id,
                "input_fingerprint": fingerprint,
            }
        ]
    )
    history = warehouse.append(DRIFT_SUMMARY, row)
    context.log.info(
        f"drift share {result.drift_share:.2f} (threshold {threshold}); drifted: {result.drifted_columns}"
    )
    yield dg.MaterializeResult(
        asset_key=DRIFT_REPORT_KEY,
        metadata={
            "drift_share": float(result.drift_share),
            "drifted_columns": dg.MetadataValue.json(result.drifted_columns),
            "method": result.method,
            "report": dg.MetadataValue.path(str(result.html_path)) if result.html_path else "",
            "per_column": preview(result.per_column, rows=30),
            "mlflow_run_id": run.info.run_id,
            "input_fingerprint": fingerprint,
        },
    )
    yield dg.MaterializeResult(
        asset_key=DRIFT_SUMMARY_KEY, metadata=table_metadata(history, DRIFT_SUMMARY)
    )
    yield _drift_check(float(result.drift_share), result.drifted_columns, threshold)


def table_fingerprint(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """A digest of a table's columns and of every row, computed by DuckDB (row order does not count)."""
    rows, hashed = con.execute(f"select count(*), coalesce(sum(hash(t)), 0)::varchar from {table} t").fetchone()
    columns = con.execute(f"select column_name, column_type from (describe {table})").fetchall()
    return hashlib.sha256(f"{columns}|{rows}|{hashed}".encode()).hexdigest()[:16]


def _drift_features(warehouse: Warehouse, settings: Settings) -> tuple[pd.DataFrame, list, list, list[str]]:
    """drift's features of every row of both windows, built one bucket of series at a time; only the rows of
    the windows and the columns drift compares come out of DuckDB."""
    from mlops_assets.monitoring.drift import drift_windows, no_level_note, window_features

    with warehouse.connection() as con:
        periods = con.execute(f"select distinct ds from {GOLD} where y is not null order by ds").df()["ds"]
        reference, current, notes = drift_windows(
            periods.to_numpy(), settings.drift.recent_periods, settings.drift.reference_periods)
        have = {c[0] for c in con.execute(f"select * from {GOLD} limit 0").description}
        columns = ", ".join(c for c in DRIFT_COLUMNS if c in have)
        rows = f"y is not null and ds >= '{pd.Timestamp(reference[0])}'"
        with_category = "category" in have and bool(
            con.execute(f"select count(category) > 0 from {GOLD} where {rows}").fetchone()[0])
        parts, no_level = [], 0
        for bounds in series_ranges(con, GOLD, settings.compute.bucket_series):
            bucket, left_out = window_features(
                series_bucket(con, GOLD, bounds, columns, where=rows), reference, current, with_category)
            no_level += left_out
            # Evidently reads the features only: the ids and periods would double what this process holds.
            parts.append(bucket.drop(columns=["unique_id", "ds"]).astype(
                {c: "category" for c in ("window", "category") if c in bucket}))
    features = pd.concat(parts, ignore_index=True)
    features = features.astype({c: object for c in ("window", "category") if c in features})
    return features, reference, current, notes + no_level_note(no_level)


def _drift_check(drift_share: float, drifted_columns: list[str], threshold: float) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        asset_key=DRIFT_REPORT_KEY,
        passed=bool(drift_share <= threshold),
        severity=dg.AssetCheckSeverity.WARN,
        description=f"drift share {drift_share:.2f} against a threshold of {threshold}",
        metadata={
            "drift_share": float(drift_share),
            "threshold": threshold,
            "drifted_columns": dg.MetadataValue.json(list(drifted_columns)),
        },
    )


@dg.asset(
    key=["monitoring", "forecast_history"],
    group_name="monitoring",
    deps=[["forecasting", "forecasts"]],
    kinds={"duckdb"},
    owners=OWNERS,
    automation_condition=downstream_condition(),
    description="Every forecast ever issued, with when it was issued and which model version made it. "
    "Append-only: a rerun of the same forecasts adds nothing and nothing is overwritten.",
)
def forecast_history(context: dg.AssetExecutionContext, warehouse: Warehouse):
    issued_at = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None, microsecond=0))
    # DuckDB compares and appends the issue on the stored tables: the history never comes into this process.
    with warehouse.connection() as con:
        require_table(con, FORECASTS)
        new_rows = con.execute(f"select count(*) from {FORECASTS}").fetchone()[0]
        before = con.execute(f"select count(*) from {FORECAST_HISTORY}").fetchone()[0] \
            if table_exists(con, FORECAST_HISTORY) else 0
        stored = new_rows == 0 or issue_already_stored(con, FORECAST_HISTORY, FORECASTS)
        sql = issue_sql(con, FORECASTS)
    total = before if stored else warehouse.append_query(FORECAST_HISTORY, sql, [issued_at.to_pydatetime()])
    added = total - before
    context.log.info(f"{added} forecast rows appended ({total} in the history)")
    head = warehouse.query(f"select * from {FORECAST_HISTORY} limit 10") if total else pd.DataFrame()
    return dg.MaterializeResult(metadata={**table_metadata(head, FORECAST_HISTORY, rows_appended=added),
                                          "dagster/row_count": total})


@dg.asset(
    key=["monitoring", "forecast_accuracy"],
    group_name="monitoring",
    deps=[["monitoring", "forecast_history"], ["gold", "sales_data_for_forecast"], SERVED_FORECASTS_KEY],
    kinds={"duckdb"},
    owners=OWNERS,
    # Served forecasts are scored when actuals or batch forecasts arrive, not on every hourly log read; and
    # a deployment that never served must not wait for them.
    automation_condition=downstream_condition().ignore(dg.AssetSelection.assets(SERVED_FORECASTS_KEY)),
    check_specs=[
        dg.AssetCheckSpec(
            ACCURACY_CHECK,
            asset=["monitoring", "forecast_accuracy"],
            description="Warns when the realized SMAPE is much worse than the backtest promised "
            "(ratio in settings.monitoring.accuracy_warn_ratio).",
        )
    ],
    description="Every past forecast that actuals now cover, scored: SMAPE (0-200, M4) and interval "
    "coverage by series, by horizon step, by model version, and its trend over forecast issues. Forecasts "
    "the endpoint served from a version with no batch forecast of that period are scored too (source served).",
)
def forecast_accuracy(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    settings = project.settings
    parts = project.paths.engine / "forecast_accuracy"
    shutil.rmtree(parts, ignore_errors=True)
    realized, written, schema, empty = [], 0, None, None
    with warehouse.connection() as con:
        for table in (FORECAST_HISTORY, GOLD):
            require_table(con, table)
        served_stored = table_exists(con, SERVED_FORECASTS)
        ids = f"(select unique_id from {FORECAST_HISTORY}" + (
            f" union all select unique_id from {SERVED_FORECASTS})" if served_stored else ")")
        ranges = series_ranges(con, ids, settings.compute.bucket_series) or [None]
        # Whole series at a time: a forecast, its actual and its champion are all in the series' bucket.
        for k, bounds in enumerate(ranges):
            history = series_bucket(con, FORECAST_HISTORY, bounds)
            served = unscored_served(
                history, series_bucket(con, SERVED_FORECASTS, bounds) if served_stored else pd.DataFrame())
            history = history.assign(source="batch")
            if not served.empty:
                history = pd.concat([history, served], ignore_index=True)
            scored = score_forecasts(history, series_bucket(con, GOLD, bounds, "unique_id, ds, y, imputed"))
            if scored.empty:
                empty = scored
                continue
            schema = column_schema(scored) if schema is None else schema
            write_part(scored, parts / f"bucket-{k:05d}.parquet")
            written += len(scored)
            realized.append(realized_vs_backtest(scored, series_bucket(con, CHAMPIONS, bounds)))
    if written:
        rows = warehouse.replace_from_parquet(FORECAST_ACCURACY, str(parts / "*.parquet"), order_by=ACCURACY_ORDER)
    else:
        warehouse.replace(FORECAST_ACCURACY, empty)
        rows, schema = 0, column_schema(empty)
    shutil.rmtree(parts, ignore_errors=True)
    head = warehouse.query(f"select * from {FORECAST_ACCURACY} order by {ACCURACY_ORDER} limit 10")
    metadata = {**table_metadata(head, FORECAST_ACCURACY, forecasts_scored=rows), "dagster/row_count": rows,
                "dagster/column_schema": schema}
    for name, by in SUMMARY_KEYS.items() if rows else ():
        metadata[name] = preview(warehouse.query(summary_sql(FORECAST_ACCURACY, by, limit=20)), rows=20)
    context.log.info(f"{rows} past forecasts scored against actuals, in {len(ranges)} buckets of up to "
                     f"{settings.compute.bucket_series} series")
    yield dg.MaterializeResult(metadata=metadata)

    ratio_limit = settings.monitoring.accuracy_warn_ratio
    if not rows:
        yield dg.AssetCheckResult(
            check_name=ACCURACY_CHECK, passed=True, metadata={"forecasts_scored": 0},
            description="no actuals cover any past forecast yet",
        )
        return
    realized = pd.concat(realized, ignore_index=True)
    overall = float(realized["realized_smape"].mean() / max(realized["backtest_smape"].mean(), 1e-9))
    worst = realized.sort_values("ratio", ascending=False).head(10)
    yield dg.AssetCheckResult(
        check_name=ACCURACY_CHECK,
        passed=bool(overall <= ratio_limit),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "realized_over_backtest": overall,
            "limit": ratio_limit,
            "worst_series": preview(worst),
        },
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            SERVING_REQUESTS_KEY,
            group_name="monitoring",
            kinds={"duckdb", "prometheus"},
            owners=OWNERS,
            # The log grows outside Dagster: read it every hour (or materialize it by hand).
            automation_condition=dg.AutomationCondition.on_cron("0 * * * *"),
            description="Every request the forecast endpoint (`make serve`) answered, from its inference log in "
            "serving/logs/ of the data directory: when, which model version, which series and horizon, the "
            "status and error, the latency. Keeps requests whose log file has since rotated away.",
        ),
        dg.AssetSpec(
            SERVED_FORECASTS_KEY,
            group_name="monitoring",
            kinds={"duckdb"},
            owners=OWNERS,
            automation_condition=dg.AutomationCondition.on_cron("0 * * * *"),
            description="The forecasts the endpoint answered, once per series, period and model version (when "
            "first served), with the step ahead: scored against actuals by monitoring.forecast_accuracy where "
            "the batch history has no forecast of that version.",
        ),
    ],
    can_subset=False,
)
def serving_requests(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    folder = project.paths.root / "serving" / "logs"
    read = read_inference_log(folder)
    existing = warehouse.read(SERVING_REQUESTS, missing_ok=True)
    combined = merge_requests(existing if not existing.empty else None, read.requests)
    served = merge_served(warehouse.read(SERVED_FORECASTS, missing_ok=True), read.forecasts)
    added = len(combined) - len(existing)
    warehouse.write(replace={SERVING_REQUESTS: combined, SERVED_FORECASTS: served})
    summary = requests_summary(combined)
    by_day = summary.pop("by_day", None)
    context.log.info(
        f"{added} requests added from {folder} ({len(combined)} in {SERVING_REQUESTS}, {len(served)} distinct "
        f"forecasts served); {len(read.skipped)} log lines skipped"
    )
    yield dg.MaterializeResult(
        asset_key=SERVING_REQUESTS_KEY,
        metadata=table_metadata(
            combined,
            SERVING_REQUESTS,
            REQUEST_COLUMNS,
            requests_added=added,
            log_folder=dg.MetadataValue.path(str(folder)),
            requests_per_day=preview(by_day, rows=31) if by_day is not None else preview(combined),
            error_share=summary.get("error_share", 0.0),
            p50_latency_ms=summary.get("p50_latency_ms", 0.0),
            p95_latency_ms=summary.get("p95_latency_ms", 0.0),
            versions_served=dg.MetadataValue.json(summary.get("versions_served", [])),
            errors_by_kind=dg.MetadataValue.json(summary.get("errors_by_kind", {})),
            skipped_log_lines=dg.MetadataValue.json(read.skipped[:20]),
        ),
    )
    yield dg.MaterializeResult(asset_key=SERVED_FORECASTS_KEY, metadata=table_metadata(served, SERVED_FORECASTS))


@dg.asset(
    key=["monitoring", "evidently_workspace"],
    group_name="monitoring",
    deps=[DRIFT_SUMMARY_KEY, ["monitoring", "forecast_accuracy"]],
    kinds={"evidently"},
    owners=OWNERS,
    automation_condition=downstream_condition(),
    description="Drift share per drift report and realized SMAPE and interval coverage per forecast issue, as "
    "runs of one project in an Evidently workspace (evidently/ in the data directory), with dashboard panels "
    "of their trend: `make monitor` opens Evidently's UI on it.",
)
def evidently_workspace(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    from mlops_assets.monitoring.evidently_workspace import PROJECT, rebuild_workspace

    folder = project.paths.root / "evidently"
    summary = rebuild_workspace(
        folder, warehouse.read(DRIFT_SUMMARY, missing_ok=True), warehouse.read(FORECAST_ACCURACY, missing_ok=True)
    )
    context.log.info(
        f"Evidently project {PROJECT!r} in {folder}: {summary.drift_runs} drift runs, {summary.accuracy_runs} "
        "accuracy runs (make monitor)"
    )
    return dg.MaterializeResult(
        metadata={
            "workspace": dg.MetadataValue.path(str(folder)),
            "project_id": summary.project_id,
            "drift_runs": summary.drift_runs,
            "accuracy_runs": summary.accuracy_runs,
            "ui": dg.MetadataValue.url(f"http://127.0.0.1:8000/projects/{summary.project_id}"),
        }
    )


monitoring_assets = [drift_report, forecast_history, forecast_accuracy, serving_requests, evidently_workspace]
monitoring_checks = [
    pandera_check(
        asset=["monitoring", "drift_summary"],
        name=CONTRACT_CHECK,
        table=DRIFT_SUMMARY,
        schema=lambda _wh, _project: schemas.DRIFT_SUMMARY,
        blocking=False,
        description="Every drift report row has ordered windows and a drift share between 0 and 1.",
    ),
    pandera_check(
        asset=["monitoring", "forecast_history"],
        name=CONTRACT_CHECK,
        table=FORECAST_HISTORY,
        schema=lambda _wh, project: schemas.forecast_history_schema(project.settings.interval_levels),
        blocking=False,
        description="One row per series, period, model version and issue; forecasts non-negative.",
    ),
    pandera_check(
        asset=["monitoring", "forecast_accuracy"],
        name=CONTRACT_CHECK,
        table=FORECAST_ACCURACY,
        schema=lambda _wh, project: schemas.forecast_accuracy_schema(project.settings.interval_levels),
        blocking=False,
        description="Scored forecasts have SMAPE in 0-200 and are for periods after their training data.",
    ),
    pandera_check(
        asset=["monitoring", "serving_requests"],
        name=CONTRACT_CHECK,
        table=SERVING_REQUESTS,
        schema=lambda _wh, _project: schemas.SERVING_REQUESTS,
        blocking=False,
        description="One row per request id; an error kind exactly on the requests that did not answer 200.",
    ),
    pandera_check(
        asset=SERVED_FORECASTS_KEY,
        name=CONTRACT_CHECK,
        table=SERVED_FORECASTS,
        schema=lambda _wh, _project: schemas.SERVED_FORECASTS,
        blocking=False,
        description="One row per series, period and model version served, with the step ahead.",
    ),
]
