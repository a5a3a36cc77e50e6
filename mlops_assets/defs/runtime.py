"""What every run uses besides its assets: the resources, the console logger and the executor."""

import dagster as dg

from mlops_assets.logs import console_logger
from mlops_assets.wiring.resources import build_resources


@dg.definitions
def runtime() -> dg.Definitions:
    return dg.Definitions(
        resources=build_resources(),
        # Asset messages and one line per step on the console; every event stays in the instance for the UI.
        loggers={"console": console_logger},
        # One process per run: DuckDB takes one writer at a time, and StatsForecast already uses every core.
        executor=dg.in_process_executor,
    )
