"""The levels' reconciled forecasts registered beside the series' model, so the endpoint answers level ids.

Opt-in with the levels (``hierarchy:``): without it the graph has no such asset.
"""

import dagster as dg

from mlops_assets.catalog import FORECASTS, FORECASTS_BY_LEVEL, GOLD, LEVELS_MODEL, key
from mlops_assets.registry.level_model import levels_model_name
from mlops_assets.registry.level_registration import register_level_forecasts
from mlops_assets.settings import load_settings
from mlops_assets.wiring.conditions import downstream_condition
from mlops_assets.wiring.metadata import OWNERS
from mlops_assets.wiring.resources import MlflowTracking, ProjectResource, Warehouse


def levels_model_definitions() -> dg.Definitions:
    """The asset, built on call so that only a declared hierarchy wires it."""

    @dg.asset(
        key=key(LEVELS_MODEL),
        group_name="registry",
        # After the blocking coherent check of forecasts_by_level, and the forecasts whose version it reconciles.
        deps=[FORECASTS_BY_LEVEL.key, FORECASTS.key],
        kinds={"mlflow"},
        owners=OWNERS,
        automation_condition=downstream_condition(),
        description="The levels' reconciled default forecasts (forecasting.forecasts_by_level, above the series) "
        "logged as an MLflow pyfunc model and registered as <registered_model_name>_levels (alias challenger), "
        "tagged with the series' model version they reconcile. Its alias champion moves only when they add up; "
        "`make serve` follows it and answers level ids with it (docs/serving.md).",
    )
    def levels_model(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse,
                     mlflow_tracking: MlflowTracking):
        settings = project.settings
        experiment = mlflow_tracking.activate()
        name = levels_model_name(settings.registered_model_name)
        try:
            registration, forecasts = register_level_forecasts(
                warehouse.connection, settings, warehouse.read(FORECASTS_BY_LEVEL.name), gold=GOLD.name,
                forecasts_table=FORECASTS.name, model_name=name,
                tags={"dagster_run_id": context.run_id, "settings_fingerprint": settings.fingerprint()},
                run_tags=mlflow_tracking.run_tags(context))
        except ValueError as err:
            raise dg.Failure(description=str(err)) from err
        (context.log.info if registration.promoted else context.log.warning)(
            f"{name} v{registration.version}: {registration.reason}")
        return dg.MaterializeResult(metadata={
            "version": registration.version,
            "registered": not registration.reused,
            "promoted": registration.promoted,
            "promotion_reason": registration.reason,
            "series_model_version": forecasts.series_version,
            "level_ids": len(forecasts.series),
            "model_uri": f"models:/{name}/{registration.version}",
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(experiment, registration.run_id)),
        })

    return dg.Definitions(assets=[levels_model])


@dg.definitions
def levels_model() -> dg.Definitions:
    if load_settings().hierarchy is None:
        return dg.Definitions()
    return levels_model_definitions()
