"""Automation: files arriving start raw runs (a sensor); everything below follows declaratively."""


import dagster as dg

from mlops_assets.defs.resources import ProjectResource
from mlops_assets.landing_watch import dump_cursor, load_cursor, scan_landing
from mlops_assets.settings import load_settings

SENSOR_INTERVAL_SECONDS = 5


def downstream_condition() -> dg.AutomationCondition:
    """Refresh once per upstream change, never while upstream runs, never past a failed blocking check."""
    return dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def expensive_condition() -> dg.AutomationCondition:
    """Backtest and champion selection: eager by default, or only on the weekly cadence (a setting)."""
    automation = load_settings().automation
    if automation.forecasting_cadence == "weekly":
        return dg.AutomationCondition.on_cron(automation.weekly_schedule)
    return downstream_condition()


@dg.sensor(
    name="landing_zone_sensor",
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=dg.AssetSelection.groups("raw"),
    description="Starts a run of the raw asset a new or changed landing file feeds (run key: its content hash).",
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, project: ProjectResource):
    scan = scan_landing(project.paths.landing, load_cursor(context.cursor))
    context.update_cursor(dump_cursor(scan.cursor))
    if not scan.ready:
        return dg.SkipReason(scan.summary())
    context.log.info(scan.summary())
    return [
        dg.RunRequest(
            run_key=file.sha256,
            asset_selection=[dg.AssetKey(["raw", file.table])],
            tags={"mlops/landing_file": file.path, "mlops/sha256": file.sha256},
        )
        for file in scan.ready
    ]


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
