"""Registry: the per-series champions as one MLflow model, promoted only when at least as good."""

import dagster as dg
import mlflow
import pandas as pd

from mlops_assets.catalog import (
    BACKTEST,
    CHAMPIONS,
    EVALUATION,
    GOLD,
    LEVELS_MODEL,
    MODEL,
    REGRESSORS,
    SERVING_OPENAPI,
    key,
)
from mlops_assets.forecasting.eligible import (
    ELIGIBLE_SQL,
    eligible_summary,
    model_fingerprint,
    regressors_sql,
    sql_fingerprint,
)
from mlops_assets.registry import model_registry
from mlops_assets.registry.level_model import levels_model_name
from mlops_assets.registry.registration import Inputs, missing_history, refit_and_register
from mlops_assets.serving.docs import served_document
from mlops_assets.serving.limits import RequestLimits
from mlops_assets.serving.openapi import write_openapi
from mlops_assets.settings import Settings, load_settings
from mlops_assets.wiring.conditions import downstream_condition, expensive_condition
from mlops_assets.wiring.failures import engine_failures
from mlops_assets.wiring.metadata import OWNERS, latest_metadata, metadata_value, previous_if_unchanged
from mlops_assets.wiring.resources import MlflowTracking, ProjectResource, Warehouse

MODEL_KEY = dg.AssetKey(key(MODEL))


def _selection_record(context: dg.AssetExecutionContext) -> dict:
    """How series_champions chose (mode, metric, the guard's out-of-sample scores), from its last materialization."""
    metadata = latest_metadata(context, dg.AssetKey(CHAMPIONS.key))
    keys = ("selection_mode", "selection_metric", "guard_metric", "champion_for_all", "per_series_last_window_score",
            "global_last_window_score")
    record = {key: metadata_value(metadata, key) for key in keys}
    record["mode"] = record.pop("selection_mode")
    record["metric"] = record.pop("selection_metric") or "smape"
    return {key: value for key, value in record.items() if value not in (None, "")}


def _inputs(warehouse: Warehouse, settings: Settings) -> Inputs:
    champions = warehouse.read(CHAMPIONS.name)
    with warehouse.connection() as con:
        _, data = eligible_summary(con)
        last_period = pd.Timestamp(con.execute(f"select max(ds) from ({ELIGIBLE_SQL})").fetchone()[0])
        x_sql = regressors_sql(con, settings, sorted(champions["model"].unique()))
        x_fingerprint = sql_fingerprint(con, x_sql)
    return Inputs(champions, warehouse.read(EVALUATION.name), BACKTEST.name, CHAMPIONS.name, data,
                  model_fingerprint(data, settings, x_fingerprint), x_sql, x_fingerprint, last_period)


@dg.asset(
    key=MODEL_KEY,
    group_name="registry",
    deps=[CHAMPIONS.key, GOLD.key, REGRESSORS.key],
    kinds={"mlflow", "statsforecast", "dask"},
    owners=OWNERS,
    automation_condition=expensive_condition(),
    description="The per-series champions refit on each series' full history (by model group on the engine of "
    "settings.compute), logged as one MLflow pyfunc "
    "model (a folder of per-group parts, loaded a group at a time) and registered as a new version of "
    "sales_forecast (alias challenger). The alias champion moves "
    "to it only when its backtest score (settings.selection.metric, SMAPE by default) on the same data is no "
    "worse than the current champion's, or, when the "
    "selection guard chose one model for all series, when that did better out of sample than per-series choice.",
)
def sales_forecast_model(
    context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse, mlflow_tracking: MlflowTracking
):
    settings = project.settings
    mlflow_tracking.activate()
    inputs = _inputs(warehouse, settings)
    previous = previous_if_unchanged(context, MODEL_KEY, inputs.fingerprint, field="fingerprint")
    if previous is not None and model_registry.alias_version(settings.registered_model_name, model_registry.CHAMPION):
        context.log.info(f"same data and settings as version {metadata_value(previous, 'version')}: "
                         "nothing registered")
        return dg.MaterializeResult(metadata={**previous, "registered": False},
                                    data_version=dg.DataVersion(inputs.fingerprint))
    with warehouse.connection() as con:
        missing = missing_history(con, CHAMPIONS.name)
    if missing:
        raise dg.Failure(f"{len(missing)} champion series have no eligible history, e.g. {missing[:10]}")
    evaluation_run = metadata_value(latest_metadata(context, dg.AssetKey(EVALUATION.key)), "mlflow_run_id")
    with engine_failures():
        registration = refit_and_register(
            warehouse.connection, settings, inputs, root=project.paths.engine / "refit",
            evaluation_run=evaluation_run, selection=_selection_record(context), dagster_run_id=context.run_id,
            log=context.log.info, warn=context.log.warning,
        )
    run_id = registration.version.run_id
    experiment = mlflow.get_run(run_id).info.experiment_id
    return dg.MaterializeResult(
        metadata={
            **registration.summary(settings),
            "fingerprint": inputs.fingerprint,
            "mlflow_run_id": run_id,
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(experiment, run_id)),
        },
        data_version=dg.DataVersion(inputs.fingerprint),
    )


@dg.asset(
    key=key(SERVING_OPENAPI),
    group_name="registry",
    # With levels declared, the document also describes the level ids the levels' model answers.
    deps=[MODEL_KEY, *([key(LEVELS_MODEL)] if load_settings().hierarchy is not None else [])],
    kinds={"mlflow", "openapi"},
    owners=OWNERS,
    automation_condition=downstream_condition(),
    description="OpenAPI 3 document of the champion's REST endpoint (`make serve`: POST /invocations), "
    "generated from the registered model's signature and input example: request and response schemas, "
    "the horizon bounds, examples, the request limits. The document `make serve` serves at /openapi.json, "
    "at the address of the settings' serving section. Written to serving/openapi.json in the data directory.",
)
def serving_openapi(context: dg.AssetExecutionContext, project: ProjectResource, mlflow_tracking: MlflowTracking):
    settings = project.settings
    mlflow_tracking.activate()
    version = model_registry.alias_version(settings.registered_model_name, model_registry.CHAMPION)
    serving = settings.serving
    levels_name = levels_model_name(settings.registered_model_name)
    levels_version = (model_registry.alias_version(levels_name, model_registry.CHAMPION)
                      if settings.hierarchy is not None else None)
    document = served_document(settings.registered_model_name, version, serving.url, RequestLimits.of(serving),
                               (levels_name, levels_version) if levels_version else None)
    path = write_openapi(document, project.paths.root / "serving" / "openapi.json")
    context.log.info(f"OpenAPI document of models:/{settings.registered_model_name}/{version} (served at "
                     f"{serving.url}) written to {path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "model_version": version,
            "document": dg.MetadataValue.json(document),
        }
    )
