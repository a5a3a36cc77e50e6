"""Automation: files arriving start raw runs (a sensor); everything below follows declaratively.

- ``landing_zone_sensor``: a new or changed landing file starts a run of the raw asset it feeds (run key: the
  file's content hash, so the same file never runs twice; the cursor survives restarts).
- ``automation_sensor``: evaluates every asset's AutomationCondition. Below raw, an asset refreshes once per
  upstream change, after its upstream finished, never past a failed blocking check. The whole chain below a
  change is requested in one run, in which a failing blocking check stops what is downstream of it.
- ``settings.automation.forecasting_cadence``: "eager" (default) refreshes backtest, champions and the
  registered model on every gold change; "weekly" only on the ``weekly_schedule`` cron, for large data.
- ``weekly_forecasting_refresh``: a schedule that re-runs the forecasting chain weekly even when no file
  arrives (stopped unless ``settings.automation.weekly_schedule_running``).
- ``retrain_on_drift_sensor``: a new failed evaluation of the drift check re-runs the champion selection.
"""

import dagster as dg
import pandas as pd

from mlops_assets import catalog
from mlops_assets.ingest.landing_watch import dump_cursor, load_cursor, scan_landing
from mlops_assets.settings import load_settings
from mlops_assets.warehouse import snapshot_path
from mlops_assets.wiring.resources import ProjectResource

SENSOR_INTERVAL_SECONDS = 5
# Dependency order of the raw assets (sales orders and promotions check their ids against products and
# customers): runs requested in one tick are queued, and run, in this order.
RAW_ORDER = tuple(table.key[-1] for table in catalog.RAW_TABLES)
DRIFT_CHECK_KEY = dg.AssetCheckKey(dg.AssetKey(catalog.key(catalog.DRIFT_REPORT)), catalog.DRIFT_CHECK)
RETRAIN_KEYS = [
    dg.AssetKey(catalog.BACKTEST.key),
    dg.AssetKey(catalog.EVALUATION.key),
    dg.AssetKey(catalog.CHAMPIONS.key),
    dg.AssetKey(catalog.key(catalog.MODEL)),
    dg.AssetKey(catalog.FORECASTS.key),
]


def _ingested(project: ProjectResource) -> set[tuple[str, str]]:
    """(table, sha256) of every file the warehouse holds, from the snapshot: never waits on a run's lock."""
    snapshot = snapshot_path(project.paths.exports, catalog.INGESTED_FILES)
    if not snapshot.exists():
        return set()
    files = pd.read_parquet(snapshot, columns=["table_name", "sha256"])
    return set(zip(files["table_name"], files["sha256"], strict=True))


@dg.sensor(
    name="landing_zone_sensor",
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=dg.AssetSelection.groups("raw"),
    description="Starts a run of the raw asset a new or changed landing file feeds (run key: its content hash). "
    "Files under a temporary name (.tmp, .part) or modified in the last 2 s are left for a later look.",
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, project: ProjectResource):
    scan = scan_landing(project.paths.landing, load_cursor(context.cursor), ingested=_ingested(project))
    context.update_cursor(dump_cursor(scan.cursor))
    if not scan.ready:
        return dg.SkipReason(scan.summary())
    context.log.info(scan.summary())
    requests = [
        dg.RunRequest(
            run_key=file.sha256,
            asset_selection=[dg.AssetKey(["raw", file.table])],
            tags={"mlops/trigger": "landing_file", "mlops/landing_file": file.path, "mlops/sha256": file.sha256},
        )
        for file in scan.ready
    ]
    # Gold waits for every raw table; one whose folder never had a file gets one run making it an empty table.
    fed = {file.table for file in scan.ready}
    for table in RAW_ORDER:
        if table not in fed and context.instance.get_latest_materialization_event(dg.AssetKey(["raw", table])) is None:
            requests.append(
                dg.RunRequest(
                    run_key=f"first-{table}",
                    asset_selection=[dg.AssetKey(["raw", table])],
                    tags={"mlops/trigger": "landing_file", "mlops/reason": "first load: no file for this table yet"},
                )
            )
    return sorted(requests, key=lambda r: RAW_ORDER.index(r.asset_selection[0].path[-1]))


def _drift_reason(record) -> str:
    evaluation = record.event.asset_check_evaluation if record.event else None
    metadata = {k: v.value for k, v in evaluation.metadata.items()} if evaluation else {}
    drifted = list(metadata.get("drifted_columns") or [])
    shown = ", ".join(drifted[:6]) + (", ..." if len(drifted) > 6 else "")
    share, threshold = metadata.get("drift_share"), metadata.get("threshold")
    if share is None or threshold is None:
        return f"drift check {DRIFT_CHECK_KEY.to_user_string()} failed (record {record.id})"
    return f"drift share {share:.2f} > threshold {threshold:g} (drifted: {shown or 'none listed'})"


@dg.sensor(
    name="retrain_on_drift_sensor",
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=dg.AssetSelection.assets(*RETRAIN_KEYS),
    description="When the drift check on monitoring/drift_report newly fails, runs the backtest, champion "
    "selection, model registration and forecasts again (cursor: the check evaluation's record id).",
)
def retrain_on_drift_sensor(context: dg.SensorEvaluationContext):
    record = context.instance.get_latest_asset_check_evaluation_record(DRIFT_CHECK_KEY)
    check_name = DRIFT_CHECK_KEY.to_user_string()
    if record is None:
        return dg.SkipReason(f"{check_name} has never been evaluated")
    handled = int(context.cursor) if context.cursor else 0
    if record.id <= handled:
        return dg.SkipReason(f"latest evaluation of {check_name} (record {record.id}) already handled")
    status = record.status.value
    if status == "PLANNED":  # its run has not reported the result yet; the record id stays the same
        return dg.SkipReason(f"{check_name} is being evaluated in run {record.run_id}")
    context.update_cursor(str(record.id))
    if status != "FAILED":
        return dg.SkipReason(f"{check_name} passed (record {record.id}): no retraining")
    reason = _drift_reason(record)
    context.log.info(f"retraining: {reason}")
    return dg.RunRequest(
        run_key=f"drift-{record.id}",
        asset_selection=RETRAIN_KEYS,
        tags={"mlops/trigger": "drift", "mlops/reason": reason, "mlops/drift_check_run": record.run_id},
    )


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    description="Evaluates every asset's automation condition: refreshes what is downstream of a change.",
)

all_assets_job = dg.define_asset_job(
    "all_assets", selection=dg.AssetSelection.all(), description="Materialize the whole graph, raw to serving."
)
forecasting_job = dg.define_asset_job(
    "forecasting_refresh",
    selection=dg.AssetSelection.groups("forecasting", "registry", "serving", "monitoring"),
    description="Backtest, select, register and forecast again from the current gold table.",
)


def weekly_schedule() -> dg.ScheduleDefinition:
    automation = load_settings().automation
    return dg.ScheduleDefinition(
        name="weekly_forecasting_refresh",
        job=forecasting_job,
        cron_schedule=automation.weekly_schedule,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if automation.weekly_schedule_running
        else dg.DefaultScheduleStatus.STOPPED,
        description="Re-runs the forecasting chain weekly even when no file arrives.",
    )


weekly_forecasting_refresh = weekly_schedule()
