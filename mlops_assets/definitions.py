"""The one Definitions object: every asset, check, sensor, schedule and resource of the product."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.automation import (
    all_assets_job,
    automation_sensor,
    forecasting_job,
    landing_zone_sensor,
    retrain_on_drift_sensor,
    weekly_schedule,
)
from mlops_assets.defs.forecasting import forecasting_assets, forecasting_checks
from mlops_assets.defs.gold import gold_checks, gold_tables, regressors
from mlops_assets.defs.monitoring import monitoring_assets, monitoring_checks
from mlops_assets.defs.raw import raw_assets, raw_checks
from mlops_assets.defs.registry import sales_forecast_model, serving_openapi
from mlops_assets.defs.resources import build_resources
from mlops_assets.defs.serving import sales_overall, serving_checks
from mlops_assets.logs import console_logger, quiet_third_party

quiet_third_party()

ASSETS = [
    *raw_assets,
    gold_tables,
    regressors,
    *forecasting_assets,
    sales_forecast_model,
    serving_openapi,
    *monitoring_assets,
    sales_overall,
]
CHECKS = [*raw_checks, *gold_checks, *forecasting_checks, *monitoring_checks, *serving_checks]

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=[all_assets_job, forecasting_job],
    sensors=[landing_zone_sensor, automation_sensor, retrain_on_drift_sensor],
    schedules=[weekly_schedule()],
    resources=build_resources(),
    # Asset messages and one line per step on the console; every event stays in the instance for the UI.
    loggers={"console": console_logger},
    # One process per run: DuckDB takes one writer at a time, and StatsForecast already uses every core.
    executor=dg.in_process_executor,
)
