"""The one Definitions object: every asset, check, sensor, schedule and resource of the product."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.automation import (
    all_assets_job,
    automation_sensor,
    forecasting_job,
    landing_zone_sensor,
    weekly_schedule,
)
from mlops_assets.defs.forecasting import forecasting_assets, forecasting_checks
from mlops_assets.defs.gold import gold_checks, gold_tables
from mlops_assets.defs.raw import raw_assets, raw_checks
from mlops_assets.defs.resources import build_resources

defs = dg.Definitions(
    assets=[*raw_assets, gold_tables, *forecasting_assets],
    asset_checks=[*raw_checks, *gold_checks, *forecasting_checks],
    jobs=[all_assets_job, forecasting_job],
    sensors=[landing_zone_sensor, automation_sensor],
    schedules=[weekly_schedule()],
    resources=build_resources(),
    # One process per run: DuckDB takes one writer at a time, and StatsForecast already uses every core.
    executor=dg.in_process_executor,
)
