"""Many-model forecasting: backtest a zoo on every series, score it, choose each series' champion."""

import time

import dagster as dg
import pandas as pd

from mlops_assets import catalog
from mlops_assets.catalog import BACKTEST, CHAMPIONS, EVALUATION, FORECASTS
from mlops_assets.forecasting.eligible import (
    ELIGIBLE_SQL,
    backtest_fingerprint,
    eligible_summary,
    regressors_sql,
    run_models,
    sql_fingerprint,
)
from mlops_assets.forecasting.engine import backtest_by_group
from mlops_assets.forecasting.evaluation import (
    choose,
    evaluate_stored_backtest,
    evaluation_fingerprint,
    log_evaluation_run,
    per_model,
)
from mlops_assets.forecasting.scoring import score_champion
from mlops_assets.forecasting.selection import selection_summary
from mlops_assets.registry.model_registry import load_champion
from mlops_assets.registry.served import unserved_in_forecasts
from mlops_assets.reporting.plots import plot_smape_distribution, plot_win_share
from mlops_assets.reporting.render import png_markdown
from mlops_assets.wiring.checks import contract_check
from mlops_assets.wiring.conditions import (
    contract_check_condition,
    downstream_condition,
    expensive_condition,
    freshness_policy,
)
from mlops_assets.wiring.failures import engine_failures
from mlops_assets.wiring.metadata import (
    OWNERS,
    latest_metadata,
    metadata_value,
    previous_if_unchanged,
    stored_table_metadata,
    table_metadata,
)
from mlops_assets.wiring.resources import MlflowTracking, ProjectResource, Warehouse


@dg.asset(
    key=BACKTEST.key,
    group_name="forecasting",
    deps=[catalog.GOLD.key, catalog.SERIES_EXCLUDED.key, catalog.REGRESSORS.key],
    kinds={"statsforecast", "lightgbm", "duckdb", "dask"},
    owners=OWNERS,
    automation_condition=expensive_condition(),
    description=BACKTEST.description,
)
def backtest_forecasts(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    settings = project.settings
    with warehouse.connection() as con:
        models, unused = run_models(con, settings)
        n_series, data = eligible_summary(con)
        x_sql = regressors_sql(con, settings, models)
        fingerprint = backtest_fingerprint(data, settings, models, sql_fingerprint(con, x_sql))
    if n_series == 0:
        raise dg.Failure("no eligible series: every gold series is in gold.series_excluded; see its reasons")
    if unused:
        context.log.warning(unused)
    engine_metadata = {}
    if previous_if_unchanged(context, context.asset_key, fingerprint) and warehouse.rows(BACKTEST.name):
        context.log.info(f"input unchanged (fingerprint {fingerprint}): kept the existing backtest")
    else:
        context.log.info(f"backtesting {len(models)} models on {n_series:,} series ({settings.backtest.windows} "
                         f"windows of {settings.horizon}); the longest step of a run"
                         + (f"; LightGBM with regressors {settings.regressors.use}" if x_sql else ""))
        started, root = time.monotonic(), project.paths.engine / "backtest"
        with engine_failures():
            run = backtest_by_group(warehouse.connection, ELIGIBLE_SQL, root, fingerprint, settings, models,
                                    context.log.info, regressors_sql=x_sql)
        warehouse.replace_from_parquet(BACKTEST.name, run.parts, order_by=BACKTEST.order_by, then_remove=root)
        engine_metadata = run.summary(settings.compute.engine)
        seconds = time.monotonic() - started
        context.log.info(f"backtest done: {n_series} series in {seconds:.1f} s "
                         f"({n_series / max(seconds, 1e-9):.1f} series/s)")
    cutoffs = warehouse.query(f"select distinct cutoff from {BACKTEST} order by cutoff")["cutoff"]
    return dg.MaterializeResult(
        metadata={
            **stored_table_metadata(warehouse, BACKTEST),
            "input_fingerprint": fingerprint,
            "models": dg.MetadataValue.json(models),
            "unused_drivers": unused or "",
            "series": n_series,
            "cutoffs": dg.MetadataValue.json([str(pd.Timestamp(c).date()) for c in cutoffs]),
            **engine_metadata,
        },
        data_version=dg.DataVersion(fingerprint),
    )


@dg.asset(
    key=EVALUATION.key,
    group_name="forecasting",
    deps=[BACKTEST.key],
    kinds={"mlflow", "duckdb"},
    owners=OWNERS,
    automation_condition=downstream_condition(),
    description=EVALUATION.description,
)
def series_evaluation(
    context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse, mlflow_tracking: MlflowTracking
):
    settings = project.settings
    backtest_print = metadata_value(latest_metadata(context, dg.AssetKey(BACKTEST.key)), "input_fingerprint")
    fingerprint = evaluation_fingerprint(backtest_print, settings)
    previous = previous_if_unchanged(context, context.asset_key, fingerprint)
    if previous is not None:
        context.log.info(f"backtest unchanged (fingerprint {fingerprint}): kept the evaluation and its MLflow run")
        return dg.MaterializeResult(metadata=previous, data_version=dg.DataVersion(fingerprint))
    evaluation, windows = evaluate_stored_backtest(warehouse.connection, BACKTEST.name, settings)
    champions, decision = choose(settings, evaluation, windows)
    summary = selection_summary(evaluation, champions, settings.selection.metric)
    warehouse.replace(EVALUATION.name, evaluation)
    with warehouse.connection() as con:
        history_fingerprint = eligible_summary(con)[1]
    experiment_id = mlflow_tracking.activate()
    run_id = log_evaluation_run(settings, history_fingerprint, evaluation, summary, decision,
                                run_name=f"evaluation-{context.run_id[:8]}", tags=mlflow_tracking.run_tags(context))
    context.log.info(f"MLflow run {run_id} in experiment {settings.experiment_name}")
    return dg.MaterializeResult(
        metadata=table_metadata(
            evaluation,
            EVALUATION.name,
            EVALUATION.columns,
            input_fingerprint=fingerprint or "",
            selection_metric=settings.selection.metric,
            mlflow_run_id=run_id,
            mlflow_run=dg.MetadataValue.url(mlflow_tracking.run_url(experiment_id, run_id)),
            data_fingerprint=history_fingerprint,
            smape_by_model=dg.MetadataValue.md(per_model(evaluation).to_markdown()),
            smape_plot=dg.MetadataValue.md(png_markdown(plot_smape_distribution(evaluation), "SMAPE by model")),
        ),
        data_version=dg.DataVersion(fingerprint) if fingerprint else None,
    )


@dg.asset(
    key=CHAMPIONS.key,
    group_name="forecasting",
    # The backtest too: the selection guard re-scores its last window.
    deps=[EVALUATION.key, BACKTEST.key],
    kinds={"duckdb", "pandas"},
    owners=OWNERS,
    automation_condition=expensive_condition(),
    description=CHAMPIONS.description,
)
def series_champions(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    evaluation = warehouse.read(EVALUATION.name)
    _, windows = evaluate_stored_backtest(warehouse.connection, BACKTEST.name, project.settings)
    champions, decision = choose(project.settings, evaluation, windows)
    metric = project.settings.selection.metric
    summary = selection_summary(evaluation, champions, metric)
    warehouse.replace(CHAMPIONS.name, champions)
    context.log.info(f"selection mode {decision['mode']} (setting {decision['requested_mode']}): {decision['reason']}")
    context.log.info(
        f"champion selection SMAPE {summary['champion_smape']:.2f} vs best single model "
        f"{summary['best_single_model']} {summary['best_single_smape']:.2f} vs seasonal naive "
        f"{summary['seasonal_naive_smape']:.2f}"
        + (f"; on {metric.upper()}: {summary['champion_score']:.4g} vs {summary['best_single_score']:.4g} vs "
           f"{summary['seasonal_naive_score']:.4g}" if metric != "smape" else "")
    )
    return dg.MaterializeResult(
        metadata=table_metadata(
            champions,
            CHAMPIONS.name,
            CHAMPIONS.columns,
            win_share=dg.MetadataValue.json({k: round(v, 4) for k, v in summary["win_share"].items()}),
            selection_mode=decision["mode"],
            selection_reason=decision["reason"],
            selection_metric=metric,
            guard_metric=decision.get("guard_metric", metric),
            **({f"{metric}_champion_selection": float(summary["champion_score"])} if metric != "smape" else {}),
            champion_for_all=decision.get("champion_for_all", ""),
            **{
                key: float(decision[key])
                for key in ("per_series_last_window_score", "global_last_window_score")
                if key in decision
            },
            smape_champion_selection=float(summary["champion_smape"]),
            best_single_model=summary["best_single_model"],
            smape_best_single_model=float(summary["best_single_smape"]),
            smape_seasonal_naive=float(summary["seasonal_naive_smape"]),
            win_share_plot=dg.MetadataValue.md(png_markdown(plot_win_share(summary["win_share"]), "wins")),
        )
    )


@dg.asset(
    key=FORECASTS.key,
    group_name="forecasting",
    deps=[catalog.key(catalog.MODEL)],
    kinds={"mlflow", "duckdb"},
    owners=OWNERS,
    automation_condition=downstream_condition(),
    freshness_policy=freshness_policy(),
    description=FORECASTS.description,
)
def forecasts(
    context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse, mlflow_tracking: MlflowTracking
):
    settings = project.settings
    mlflow_tracking.activate()
    model, version = load_champion(settings.registered_model_name)
    rows, n_series = score_champion(
        model, settings.compute.bucket_series, project.paths.engine / "scoring",
        lambda parts: warehouse.replace_from_parquet(FORECASTS.name, parts, order_by=FORECASTS.order_by),
        context.log.info,
    )
    context.log.info(f"{rows} forecast rows for {n_series} series from {settings.registered_model_name}"
                     f" version {version}")
    unserved = unserved_in_forecasts(warehouse.connection, FORECASTS.name)
    (context.log.warning if unserved.count else context.log.info)(unserved.message())
    span = warehouse.query(f"select min(ds) as first, max(ds) as last from {FORECASTS}").iloc[0]
    return dg.MaterializeResult(
        metadata={
            **stored_table_metadata(warehouse, FORECASTS),
            "model_version": version,
            "model_uri": f"models:/{settings.registered_model_name}@champion",
            "series": n_series,
            "first_period": str(pd.Timestamp(span["first"]).date()),
            "last_period": str(pd.Timestamp(span["last"]).date()),
            **unserved.metadata(),
        },
        data_version=dg.DataVersion(f"model-{version}"),
    )


@dg.asset_check(asset=FORECASTS.key, name="champions_served", blocking=False,
                automation_condition=contract_check_condition(),
                description="Warns with the count of series whose champion could not be served (another model, "
                "named in the model column, made their forecasts; champion says the chosen one).")
def champions_served_check(warehouse: Warehouse) -> dg.AssetCheckResult:
    unserved = unserved_in_forecasts(warehouse.connection, FORECASTS.name)
    return dg.AssetCheckResult(passed=unserved.count == 0, severity=dg.AssetCheckSeverity.WARN,
                               description=unserved.message(), metadata=unserved.metadata())


forecasting_checks = [champions_served_check,
                      *(contract_check(table) for table in (BACKTEST, EVALUATION, CHAMPIONS, FORECASTS))]
