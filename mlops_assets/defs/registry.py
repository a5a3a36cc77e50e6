"""Registry: the per-series champions as one MLflow model, promoted only when at least as good."""

import shutil

import dagster as dg
import mlflow
import pandas as pd

from mlops_assets.defs.automation import downstream_condition, expensive_condition
from mlops_assets.defs.forecasting import (
    BACKTEST,
    CHAMPIONS,
    CHAMPIONS_KEY,
    ELIGIBLE_SQL,
    EVALUATION,
    EVALUATION_KEY,
    eligible_summary,
    regressors_sql,
    sql_fingerprint,
)
from mlops_assets.defs.meta import OWNERS, latest_metadata, metadata_value
from mlops_assets.defs.resources import MlflowTracking, ProjectResource, Warehouse
from mlops_assets.forecasting.engine import BucketFailure
from mlops_assets.forecasting.zoo import default_models
from mlops_assets.registry import model_registry
from mlops_assets.registry.refit import champion_errors_by_bucket, mean_abs_actuals, refit_by_bucket
from mlops_assets.registry.served import served_champions, unserved_champions
from mlops_assets.serving.docs import served_document
from mlops_assets.serving.limits import RequestLimits
from mlops_assets.serving.openapi import write_openapi

MODEL_KEY = dg.AssetKey(["registry", "sales_forecast_model"])


def _selection_record(context: dg.AssetExecutionContext) -> dict:
    """How series_champions chose (mode, metric, the guard's out-of-sample scores), from its last materialization."""
    metadata = latest_metadata(context, CHAMPIONS_KEY)
    keys = ("selection_mode", "selection_metric", "champion_for_all", "per_series_last_window_score",
            "global_last_window_score")
    record = {key: metadata_value(metadata, key) for key in keys}
    record["mode"] = record.pop("selection_mode")
    record["metric"] = record.pop("selection_metric") or "smape"
    return {key: value for key, value in record.items() if value not in (None, "")}


@dg.asset(
    key=MODEL_KEY,
    group_name="registry",
    deps=[["forecasting", "series_champions"], ["gold", "sales_data_for_forecast"], ["gold", "regressors"]],
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
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    warehouse: Warehouse,
    mlflow_tracking: MlflowTracking,
):
    settings = project.settings
    name = settings.registered_model_name
    _, data = eligible_summary(warehouse)
    last_period = pd.Timestamp(warehouse.query(f"select max(ds) as ds from ({ELIGIBLE_SQL})")["ds"].iloc[0])
    champions = warehouse.read(CHAMPIONS)
    evaluation = warehouse.read(EVALUATION)
    mlflow_tracking.activate()
    models = sorted(champions["model"].unique())
    x_fingerprint = sql_fingerprint(warehouse, regressors_sql(warehouse, settings, models))
    # New planned promotions change LightGBM's forecasts: they register a new version too.
    fingerprint = f"{data}-{settings.fingerprint()}" + (f"-{x_fingerprint}" if x_fingerprint else "")
    previous = latest_metadata(context, MODEL_KEY)
    champion = model_registry.alias_version(name, model_registry.CHAMPION)
    if metadata_value(previous, "fingerprint") == fingerprint and champion:
        context.log.info(
            f"same data and settings as version {metadata_value(previous, 'version')}: nothing registered"
        )
        return dg.MaterializeResult(metadata={**previous, "registered": False})

    # Calibration first, from the champions' backtest rows only, a bucket of series at a time (it pools every
    # series' scaled errors, a float and a step per row), then the refit by
    # model group on the engine: neither the history nor the backtest passes through this process.
    missing = warehouse.query(f"select unique_id::varchar as u from {CHAMPIONS} where unique_id::varchar not in "
                              f"(select unique_id::varchar from ({ELIGIBLE_SQL})) order by 1")["u"].tolist()
    if missing:
        raise dg.Failure(f"{len(missing)} champion series have no eligible history, e.g. {missing[:10]}")
    actuals = mean_abs_actuals(warehouse.connection, ELIGIBLE_SQL)
    errors = champion_errors_by_bucket(warehouse.connection, BACKTEST, CHAMPIONS, champions, actuals, settings)
    calibration = errors.calibration
    root = project.paths.engine / "refit"
    try:
        run = refit_by_bucket(
            warehouse.connection, ELIGIBLE_SQL, champions, BACKTEST, root, fingerprint, settings,
            len(default_models(settings)), calibration, regressors_sql(warehouse, settings, models), context.log.info,
        )
    except BucketFailure as err:
        raise dg.Failure(description=str(err), metadata={
            "failed_series": dg.MetadataValue.json({b.name: list(b.unique_ids) for b in err.failed}),
        }) from err
    # The parts stay on disk until MLflow has copied them in: the model is that folder.
    forecaster = run.forecaster
    unserved = unserved_champions(forecaster.series)
    (context.log.warning if unserved.count else context.log.info)(unserved.message())
    # The version claims only what it serves: a replaced champion is registered as the model serving it.
    served = served_champions(champions, forecaster.series, evaluation)
    # The check of the backtest calibration: set on the earlier windows, scored on the last one.
    coverage = errors.coverage(champions, actuals, settings, clip=forecaster.clipped)
    del errors
    held = ", ".join(f"{cov:.1f}% for {lv}%" for lv, cov in coverage.items())
    context.log.info(
        f"intervals: {settings.intervals.method}" + (f" (held {held} of the last backtest window)" if held else "")
        + f"; clipped at 0: {forecaster.clipped}"
    )
    evaluation_run = metadata_value(latest_metadata(context, EVALUATION_KEY), "mlflow_run_id")
    version, decision = model_registry.register_and_gate(
        forecaster,
        served,
        evaluation,
        name=name,
        run_id=evaluation_run,
        description=f"{len(champions)} series of gold.sales_data_for_forecast up to {last_period.date()}"
        f" (data {data}); frequency {settings.frequency}, horizon {settings.horizon}, "
        f"{settings.backtest.windows} backtest windows; Dagster run {context.run_id}.",
        tags={
            "data_fingerprint": data,
            "settings_fingerprint": settings.fingerprint(),
            "dagster_run_id": context.run_id,
            "frequency": settings.frequency,
            "horizon": str(settings.horizon),
            "selection_metric": settings.selection.metric,
            **({"regressors_fingerprint": x_fingerprint} if x_fingerprint else {}),
        },
        tolerance=settings.promotion_tolerance,
        selection=_selection_record(context),
        metric=settings.selection.metric,
    )
    shutil.rmtree(root, ignore_errors=True)
    if version.reused:
        context.log.info(f"{name} v{version.version} was already registered from these inputs (an earlier run "
                         "stopped before recording it): reused, nothing registered")
    log = context.log.info if decision.promoted else context.log.warning
    log(f"{name} v{version.version}: {'promoted to champion' if decision.promoted else 'not promoted'}: "
        f"{decision.reason}")
    experiment = mlflow.get_run(version.run_id).info.experiment_id
    return dg.MaterializeResult(
        metadata={
            "version": version.version,
            "model_uri": version.model_uri,
            "registered": not version.reused,
            "promoted": decision.promoted,
            "promotion_reason": decision.reason,
            "promotion_metric": decision.metric,
            "new_score": float(decision.new_score),
            **({"champion_score_before": float(decision.current_score)} if decision.current_score is not None else {}),
            "champion_version": model_registry.alias_version(name, model_registry.CHAMPION) or "",
            "series": len(champions),
            **unserved.metadata(),
            "engine": settings.compute.engine,
            "model_groups": len(run.groups),
            "refit_cpu_seconds": round(sum(r["cpu_seconds"] for r in run.reports), 1),
            "interval_method": settings.intervals.method,
            "clipped_at_zero": forecaster.clipped,
            **{f"last_window_coverage_{lv}": float(cov) for lv, cov in coverage.items()},
            "fingerprint": fingerprint,
            "mlflow_run_id": version.run_id,
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(experiment, version.run_id)),
        }
    )


@dg.asset(
    key=["registry", "serving_openapi"],
    group_name="registry",
    deps=[MODEL_KEY],
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
    document = served_document(settings.registered_model_name, version, serving.url, RequestLimits.of(serving))
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
