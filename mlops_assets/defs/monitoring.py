"""Monitoring: Evidently drift of the gold table, and forecast accuracy once actuals arrive."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from mlops_assets import catalog
from mlops_assets.catalog import (
    CHAMPIONS,
    DRIFT_CHECK,
    DRIFT_SUMMARY,
    FORECAST_ACCURACY,
    FORECAST_HISTORY,
    FORECASTS,
    GOLD,
    SERVED_FORECASTS,
    SERVING_REQUESTS,
)
from mlops_assets.monitoring.accuracy import SUMMARY_KEYS, issue_already_stored, issue_sql, summary_sql
from mlops_assets.monitoring.accuracy_by_range import realized_ratio, score_by_range
from mlops_assets.monitoring.drift_report import DriftOutcome, already_reported, input_fingerprint, report_drift
from mlops_assets.monitoring.serving_requests import (
    merge_requests,
    merge_served,
    read_inference_log,
    requests_summary,
)
from mlops_assets.warehouse import require_table, row_count
from mlops_assets.wiring.checks import contract_check
from mlops_assets.wiring.conditions import downstream_condition
from mlops_assets.wiring.metadata import (
    OWNERS,
    column_schema,
    latest_metadata,
    metadata_value,
    preview,
    previous_if_unchanged,
    stored_table_metadata,
    table_metadata,
)
from mlops_assets.wiring.resources import MlflowTracking, ProjectResource, Warehouse

ACCURACY_CHECK = "realized_accuracy_within_promise"
DRIFT_REPORT_KEY = dg.AssetKey(catalog.key(catalog.DRIFT_REPORT))


def _drift_spec(key, description: str, kinds: set[str]) -> dg.AssetSpec:
    return dg.AssetSpec(key, description=description, deps=[GOLD.key], group_name="monitoring", kinds=kinds,
                        owners=OWNERS, automation_condition=downstream_condition())


@dg.multi_asset(
    specs=[
        _drift_spec(DRIFT_REPORT_KEY, "Evidently data-drift report: the last periods of the gold table against the "
                    "year before, on sales relative to each series' level, price, promotion share, zero periods and "
                    "the category mix. Each materialization keeps its own HTML report.", {"evidently", "mlflow"}),
        _drift_spec(DRIFT_SUMMARY.key, DRIFT_SUMMARY.description, {"duckdb"}),
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
    context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse, mlflow_tracking: MlflowTracking
):
    settings = project.settings
    threshold = settings.drift.threshold
    with warehouse.connection() as con:
        require_table(con, GOLD.name)
        fingerprint = input_fingerprint(con, GOLD.name, settings)
    version = dg.DataVersion(fingerprint)
    previous = previous_if_unchanged(context, DRIFT_REPORT_KEY, fingerprint)
    if previous is not None:
        context.log.info("gold unchanged since the last drift report: kept it, appended nothing")
        yield dg.MaterializeResult(asset_key=DRIFT_REPORT_KEY, metadata=previous, data_version=version)
        yield dg.MaterializeResult(asset_key=DRIFT_SUMMARY.key,
                                   metadata=latest_metadata(context, dg.AssetKey(DRIFT_SUMMARY.key)))
        yield _drift_check(metadata_value(previous, "drift_share"), metadata_value(previous, "drifted_columns"),
                           threshold)
        return
    outcome = already_reported(warehouse.read(DRIFT_SUMMARY.name, missing_ok=True), fingerprint, project.paths.root)
    if outcome is not None:
        context.log.info(f"this gold was already reported by run {outcome.reported_by}: appended nothing")
    else:
        mlflow_tracking.activate()
        outcome = report_drift(warehouse.connection, GOLD.name, settings, root=project.paths.root,
                               report_dir=project.paths.reports / "drift", fingerprint=fingerprint,
                               run_tags=mlflow_tracking.run_tags(context), dagster_run_id=context.run_id)
        warehouse.append(DRIFT_SUMMARY.name, outcome.row)
        context.log.info(f"drift share {outcome.drift_share:.2f} (threshold {threshold}); "
                         f"drifted: {outcome.drifted_columns}")
    yield dg.MaterializeResult(asset_key=DRIFT_REPORT_KEY, metadata=_drift_metadata(outcome, fingerprint),
                               data_version=version)
    yield dg.MaterializeResult(asset_key=DRIFT_SUMMARY.key, metadata=stored_table_metadata(warehouse, DRIFT_SUMMARY))
    yield _drift_check(outcome.drift_share, outcome.drifted_columns, threshold)


def _drift_metadata(outcome: DriftOutcome, fingerprint: str) -> dict[str, object]:
    return {
        "drift_share": outcome.drift_share,
        "drifted_columns": dg.MetadataValue.json(outcome.drifted_columns),
        "method": outcome.method,
        "report": dg.MetadataValue.path(str(outcome.report)) if outcome.report else "",
        **({"per_column": preview(outcome.per_column, rows=30)} if outcome.per_column is not None else {}),
        "mlflow_run_id": outcome.mlflow_run_id,
        "input_fingerprint": fingerprint,
    }


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
    key=FORECAST_HISTORY.key,
    group_name="monitoring",
    deps=[FORECASTS.key],
    kinds={"duckdb"},
    owners=OWNERS,
    automation_condition=downstream_condition(),
    description=FORECAST_HISTORY.description,
)
def forecast_history(context: dg.AssetExecutionContext, warehouse: Warehouse):
    issued_at = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None, microsecond=0))
    # DuckDB compares and appends the issue on the stored tables: the history never comes into this process.
    with warehouse.connection() as con:
        require_table(con, FORECASTS.name)
        before = row_count(con, FORECAST_HISTORY.name)
        stored = row_count(con, FORECASTS.name) == 0 or issue_already_stored(con, FORECAST_HISTORY.name,
                                                                             FORECASTS.name)
        sql = issue_sql(con, FORECASTS.name)
    total = before if stored else warehouse.append_query(FORECAST_HISTORY.name, sql, [issued_at.to_pydatetime()])
    added = total - before
    context.log.info(f"{added} forecast rows appended ({total} in the history)")
    head = warehouse.query(f"select * from {FORECAST_HISTORY} limit 10") if total else pd.DataFrame()
    return dg.MaterializeResult(metadata={**table_metadata(head, FORECAST_HISTORY.name, rows_appended=added),
                                          "dagster/row_count": total})


@dg.asset(
    key=FORECAST_ACCURACY.key,
    group_name="monitoring",
    deps=[FORECAST_HISTORY.key, GOLD.key, SERVED_FORECASTS.key],
    kinds={"duckdb"},
    owners=OWNERS,
    # Served forecasts are scored when actuals or batch forecasts arrive, not on every hourly log read; and
    # a deployment that never served must not wait for them.
    automation_condition=downstream_condition().ignore(dg.AssetSelection.assets(SERVED_FORECASTS.key)),
    check_specs=[
        dg.AssetCheckSpec(
            ACCURACY_CHECK,
            asset=FORECAST_ACCURACY.key,
            description="Warns when the realized SMAPE is much worse than the backtest promised "
            "(ratio in settings.monitoring.accuracy_warn_ratio).",
        )
    ],
    description=FORECAST_ACCURACY.description,
)
def forecast_accuracy(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    settings = project.settings
    with warehouse.connection() as con:
        scored = score_by_range(con, history_table=FORECAST_HISTORY.name, served_table=SERVED_FORECASTS.name,
                                gold=GOLD.name, champions=CHAMPIONS.name,
                                parts=project.paths.engine / "forecast_accuracy",
                                range_series=settings.compute.bucket_series)
    if scored.rows:
        warehouse.replace_from_parquet(FORECAST_ACCURACY.name, scored.pattern, order_by=FORECAST_ACCURACY.order_by,
                                       then_remove=scored.parts)
    else:
        warehouse.replace(FORECAST_ACCURACY.name, scored.columns)
    rows = scored.rows
    metadata = {**stored_table_metadata(warehouse, FORECAST_ACCURACY, forecasts_scored=rows),
                "dagster/column_schema": column_schema(scored.columns)}
    for name, by in SUMMARY_KEYS.items() if rows else ():
        metadata[name] = preview(warehouse.query(summary_sql(FORECAST_ACCURACY.name, by, limit=20)), rows=20)
    context.log.info(f"{rows} past forecasts scored against actuals, in {scored.ranges} ranges of up to "
                     f"{settings.compute.bucket_series} series")
    yield dg.MaterializeResult(metadata=metadata)
    if not rows:
        yield dg.AssetCheckResult(check_name=ACCURACY_CHECK, passed=True, metadata={"forecasts_scored": 0},
                                  description="no actuals cover any past forecast yet")
        return
    overall, worst = realized_ratio(scored.realized)
    limit = settings.monitoring.accuracy_warn_ratio
    yield dg.AssetCheckResult(check_name=ACCURACY_CHECK, passed=bool(overall <= limit),
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"realized_over_backtest": overall, "limit": limit,
                                        "worst_series": preview(worst)})


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            SERVING_REQUESTS.key,
            group_name="monitoring",
            kinds={"duckdb", "prometheus"},
            owners=OWNERS,
            # The log grows outside Dagster: read it every hour (or materialize it by hand).
            automation_condition=dg.AutomationCondition.on_cron("0 * * * *"),
            description=SERVING_REQUESTS.description,
        ),
        dg.AssetSpec(
            SERVED_FORECASTS.key,
            group_name="monitoring",
            kinds={"duckdb"},
            owners=OWNERS,
            automation_condition=dg.AutomationCondition.on_cron("0 * * * *"),
            description=SERVED_FORECASTS.description,
        ),
    ],
    can_subset=False,
)
def serving_requests(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    folder = project.paths.root / "serving" / "logs"
    read = read_inference_log(folder)
    existing = warehouse.read(SERVING_REQUESTS.name, missing_ok=True)
    combined = merge_requests(existing if not existing.empty else None, read.requests)
    served = merge_served(warehouse.read(SERVED_FORECASTS.name, missing_ok=True), read.forecasts)
    added = len(combined) - len(existing)
    warehouse.write(replace={SERVING_REQUESTS.name: combined, SERVED_FORECASTS.name: served})
    summary = requests_summary(combined)
    context.log.info(
        f"{added} requests added from {folder} ({len(combined)} in {SERVING_REQUESTS}, {len(served)} distinct "
        f"forecasts served); {len(read.skipped)} log lines skipped"
    )
    yield dg.MaterializeResult(
        asset_key=SERVING_REQUESTS.key,
        metadata=table_metadata(
            combined,
            SERVING_REQUESTS.name,
            SERVING_REQUESTS.columns,
            requests_added=added,
            log_folder=dg.MetadataValue.path(str(folder)),
            requests_per_day=preview(summary.by_day, rows=31) if summary.by_day is not None else preview(combined),
            error_share=summary.error_share,
            p50_latency_ms=summary.p50_latency_ms,
            p95_latency_ms=summary.p95_latency_ms,
            versions_served=dg.MetadataValue.json(summary.versions_served),
            errors_by_kind=dg.MetadataValue.json(summary.errors_by_kind),
            skipped_log_lines=dg.MetadataValue.json(read.skipped[:20]),
        ),
    )
    yield dg.MaterializeResult(asset_key=SERVED_FORECASTS.key, metadata=table_metadata(served, SERVED_FORECASTS.name))


@dg.asset(
    key=catalog.key(catalog.EVIDENTLY_WORKSPACE),
    group_name="monitoring",
    deps=[DRIFT_SUMMARY.key, FORECAST_ACCURACY.key],
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
        folder, warehouse.read(DRIFT_SUMMARY.name, missing_ok=True),
        warehouse.read(FORECAST_ACCURACY.name, missing_ok=True),
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
monitoring_checks = [contract_check(table) for table in (DRIFT_SUMMARY, FORECAST_HISTORY, FORECAST_ACCURACY,
                                                         SERVING_REQUESTS, SERVED_FORECASTS)]
