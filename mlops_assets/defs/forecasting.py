"""Many-model forecasting: backtest a zoo on every series, score it, choose each series' champion."""


import hashlib
import math
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd

from mlops_assets import schemas
from mlops_assets.defs.automation import downstream_condition, expensive_condition
from mlops_assets.defs.meta import OWNERS, latest_metadata, metadata_value, pandera_check, table_metadata
from mlops_assets.defs.resources import MlflowTracking, ProjectResource, Warehouse
from mlops_assets.forecasting.engine import BucketFailure, backtest_by_bucket, evaluate_by_bucket
from mlops_assets.forecasting.metrics import METRIC_DESCRIPTIONS
from mlops_assets.forecasting.scoring import fixed_chunks, score_by_chunk
from mlops_assets.forecasting.selection import choose_from_evaluations, selection_summary
from mlops_assets.forecasting.zoo import COMBINATION, GLOBAL_MODEL, declared_drivers, default_models, unused_drivers
from mlops_assets.gold.regressors import promotions_planned
from mlops_assets.registry.model_registry import load_champion
from mlops_assets.serving.plots import plot_smape_distribution, plot_win_share, png_markdown
from mlops_assets.settings import Settings
from mlops_assets.warehouse import table_exists

BACKTEST = "forecasting.backtest_forecasts"
EVALUATION = "forecasting.series_evaluation"
CHAMPIONS = "forecasting.series_champions"
FORECASTS = "forecasting.forecasts"
CONTRACT_CHECK = "matches_contract"
EVALUATION_KEY = dg.AssetKey(["forecasting", "series_evaluation"])
BACKTEST_KEY = dg.AssetKey(["forecasting", "backtest_forecasts"])
CHAMPIONS_KEY = dg.AssetKey(["forecasting", "series_champions"])


# The gold series that can be forecast, as SQL: the heavy steps let DuckDB cut it by bucket.
ELIGIBLE_SQL = (
    "select unique_id, ds, y from gold.sales_data_for_forecast "
    "where unique_id not in (select unique_id from gold.series_excluded)"
)


def _evaluated_dataset(history_fingerprint: str):
    """The eligible gold series as an MLflow dataset: its digest tells two runs on the same data apart.

    Described, not loaded: the digest is the fingerprint DuckDB computes, so the run process never holds
    the history (see the engine).
    """
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema

    schema = Schema([ColSpec("string", "unique_id"), ColSpec("datetime", "ds"), ColSpec("double", "y")])
    return MetaDataset(CodeDatasetSource({}), name="gold.sales_data_for_forecast (eligible series)",
                       digest=history_fingerprint, schema=schema)


def eligible_summary(warehouse: Warehouse) -> tuple[int, str]:
    """Series count and an order-free fingerprint of the eligible history, computed inside DuckDB."""
    found = warehouse.query(
        f"select count(distinct unique_id) as n, count(*) as rows, "
        f"coalesce(sum(hash(unique_id::varchar, ds, y))::varchar, '') as h from ({ELIGIBLE_SQL})"
    ).iloc[0]
    return int(found["n"]), hashlib.sha256(f"{found['rows']}|{found['h']}".encode()).hexdigest()[:16]


def regressors_sql(warehouse: Warehouse, settings: Settings, models: list[str]) -> str | None:
    """gold.regressors' columns in settings.regressors.use, as SQL, when a model of the list uses them."""
    if GLOBAL_MODEL not in models and COMBINATION not in models and settings.closed.column is None:
        return None
    if not settings.regressors.use:
        return None
    with warehouse.connection() as con:
        if not table_exists(con, "gold.regressors"):
            return None
    columns = ", ".join(f'"{c}"' for c in settings.regressors.use)
    return f"select unique_id::varchar as unique_id, ds, {columns} from gold.regressors"


def sql_fingerprint(warehouse: Warehouse, sql: str | None) -> str:
    """An order-free fingerprint of a query's rows, computed inside DuckDB ('' for no query)."""
    if sql is None:
        return ""
    found = warehouse.query(f"select count(*) as rows, coalesce(sum(hash(columns(*)))::varchar, '') as h "
                            f"from ({sql})").iloc[0]
    return hashlib.sha256("|".join(map(str, found.tolist())).encode()).hexdigest()[:16]


def backtest_fingerprint(data: str, settings: Settings, models: list[str], regressors: str = "") -> str:
    # The metric changes the backtest only through the Combination's members: a metric change alone must not
    # cost a backtest of the whole zoo otherwise.
    metric = settings.selection.metric if COMBINATION in models else ""
    spec = f"{data}|{settings.frequency}|{settings.horizon}|{settings.step}|" \
           f"{settings.backtest.windows}|{settings.season}|{','.join(models)}|{regressors}|" \
           f"{settings.combination_size}|{settings.regressors.model_dump_json()}|{metric}|" \
           f"{settings.closed.model_dump_json()}"
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def _table_rows(warehouse: Warehouse, table: str) -> int:
    with warehouse.connection() as con:
        return int(con.execute(f"select count(*) from {table}").fetchone()[0]) if table_exists(con, table) else 0


@dg.asset(
    key=["forecasting", "backtest_forecasts"],
    group_name="forecasting",
    deps=[["gold", "sales_data_for_forecast"], ["gold", "series_excluded"], ["gold", "regressors"]],
    kinds={"statsforecast", "lightgbm", "duckdb", "dask"},
    owners=OWNERS,
    automation_condition=expensive_condition(),
    description="Rolling-origin cross-validation of the model zoo on every eligible series: what each model "
    "would have forecast at each cutoff, next to what happened. Computed by bucket of series on the engine "
    "of settings.compute (local process pool or Dask). Skipped when its input is unchanged.",
)
def backtest_forecasts(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    settings = project.settings
    drivers = declared_drivers(settings, promotions_planned(warehouse.connection))
    models = default_models(settings, drivers)
    unused = unused_drivers(models, drivers)
    if unused:
        context.log.warning(unused)
    n_series, data = eligible_summary(warehouse)
    if n_series == 0:
        raise dg.Failure("no eligible series: every gold series is in gold.series_excluded; see its reasons")
    x_sql = regressors_sql(warehouse, settings, models)
    fingerprint = backtest_fingerprint(data, settings, models, sql_fingerprint(warehouse, x_sql))
    previous = latest_metadata(context, context.asset_key)
    unchanged = metadata_value(previous, "input_fingerprint") == fingerprint
    engine_metadata = {}
    if unchanged and _table_rows(warehouse, BACKTEST):
        context.log.info(f"input unchanged (fingerprint {fingerprint}): kept the existing backtest")
    else:
        context.log.info(f"backtesting {len(models)} models on {n_series:,} series ({settings.backtest.windows} "
                         f"windows of {settings.horizon}); the longest step of a run"
                         + (f"; LightGBM with regressors {settings.regressors.use}" if x_sql else ""))
        started = time.monotonic()
        root = project.paths.engine / "backtest"
        try:
            run = backtest_by_bucket(
                warehouse.connection, ELIGIBLE_SQL, root, fingerprint, settings, models, context.log.info,
                regressors_sql=x_sql,
            )
        except BucketFailure as err:
            raise dg.Failure(description=str(err), metadata={
                "failed_series": dg.MetadataValue.json(
                    {b.name: list(b.unique_ids) for b in err.failed}
                ),
            }) from err
        warehouse.replace_from_parquet(BACKTEST, run.parts, order_by="unique_id, model, cutoff, ds")
        shutil.rmtree(root, ignore_errors=True)
        engine_metadata = {
            "engine": settings.compute.engine,
            "workers": run.workers,
            "model_groups": len(run.groups),
            "buckets": len(run.buckets),
            "group_cost_max_over_mean": round(max(g.cost for g in run.groups) * len(run.groups)
                                              / sum(g.cost for g in run.groups), 4),
            "task_cpu_seconds": round(sum(r["cpu_seconds"] for r in run.reports), 1),
            "worker_peak_mb": round(max((r["worker_peak_mb"] for r in run.reports), default=0.0), 1),
        }
        seconds = time.monotonic() - started
        context.log.info(f"backtest done: {n_series} series in {seconds:.1f} s "
                         f"({n_series / max(seconds, 1e-9):.1f} series/s)")
    head = warehouse.query(f"select * from {BACKTEST} order by unique_id, model, cutoff, ds limit 10")
    cutoffs = warehouse.query(f"select distinct cutoff from {BACKTEST} order by cutoff")["cutoff"]
    return dg.MaterializeResult(
        metadata={
            **table_metadata(head, BACKTEST),
            "dagster/row_count": _table_rows(warehouse, BACKTEST),
            "input_fingerprint": fingerprint,
            "models": dg.MetadataValue.json(models),
            "unused_drivers": unused or "",
            "series": n_series,
            "cutoffs": dg.MetadataValue.json([str(pd.Timestamp(c).date()) for c in cutoffs]),
            **engine_metadata,
        }
    )


def evaluate_stored_backtest(warehouse: Warehouse, settings: Settings):
    """The evaluation and the guard's window evaluations, read from the stored backtest one bucket at a time."""
    n_series, _ = eligible_summary(warehouse)
    return evaluate_by_bucket(
        warehouse.connection, BACKTEST, ELIGIBLE_SQL, settings.season,
        math.ceil(n_series / settings.compute.bucket_series), settings.selection.guard_windows,
    )


@dg.asset(
    key=["forecasting", "series_evaluation"],
    group_name="forecasting",
    deps=[["forecasting", "backtest_forecasts"]],
    kinds={"mlflow", "duckdb"},
    owners=OWNERS,
    automation_condition=downstream_condition(),
    description="Accuracy of every model on every series over all backtest windows: SMAPE (0-200, M4), MAE, "
    "RMSE, MASE, WAPE (%), bias; declared closed periods are not scored. Each materialization is one MLflow "
    "run in the experiment sales_forecast, with the selection metric (settings.selection.metric).",
)
def series_evaluation(
    context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse, mlflow_tracking: MlflowTracking
):
    settings = project.settings
    backtest_print = metadata_value(latest_metadata(context, BACKTEST_KEY), "input_fingerprint")
    # The run records what the selection ranks on: a metric change is a new run, not a new backtest.
    fingerprint = f"{backtest_print}-{settings.selection.metric}" if backtest_print else None
    previous = latest_metadata(context, EVALUATION_KEY)
    if fingerprint and metadata_value(previous, "input_fingerprint") == fingerprint:
        context.log.info(f"backtest unchanged (fingerprint {fingerprint}): kept the evaluation and its MLflow run")
        return dg.MaterializeResult(metadata=previous)
    evaluation, windows = evaluate_stored_backtest(warehouse, settings)
    champions, decision = _choose(settings, evaluation, windows)
    summary = selection_summary(evaluation, champions, settings.selection.metric)
    warehouse.replace(EVALUATION, evaluation)
    history_fingerprint = eligible_summary(warehouse)[1]
    run_id, url = _log_evaluation_run(
        context, mlflow_tracking, settings, history_fingerprint, evaluation, summary, decision
    )
    return dg.MaterializeResult(
        metadata=table_metadata(
            evaluation,
            EVALUATION,
            {"smape": schemas.SMAPE_DESCRIPTION, **{m: METRIC_DESCRIPTIONS[m] for m in ("mase", "rmse", "wape")}},
            input_fingerprint=fingerprint or "",
            selection_metric=settings.selection.metric,
            mlflow_run_id=run_id,
            mlflow_run=dg.MetadataValue.url(url),
            data_fingerprint=history_fingerprint,
            smape_by_model=dg.MetadataValue.md(_per_model(evaluation).to_markdown()),
            smape_plot=dg.MetadataValue.md(png_markdown(plot_smape_distribution(evaluation), "SMAPE by model")),
        )
    )


def _choose(settings, evaluation: pd.DataFrame, windows):
    return choose_from_evaluations(
        evaluation,
        windows,
        mode=settings.selection.mode,
        tolerance=settings.selection.global_tolerance,
        margin=settings.selection.margin,
        metric=settings.selection.metric,
    )


def _per_model(evaluation: pd.DataFrame, metric: str = "smape") -> pd.DataFrame:
    return evaluation.groupby("model")[metric].agg(["mean", "median"]).round(4).sort_values("mean")


def _code_version() -> str:
    from importlib.metadata import version

    return version("mlops_assets")


def _log_evaluation_run(context, tracking: MlflowTracking, settings, history_fingerprint, evaluation, summary,
                        decision):
    experiment_id = tracking.activate()
    description = (
        f"Backtest of {evaluation['model'].nunique()} models on {evaluation['unique_id'].nunique()} series of "
        f"gold.sales_data_for_forecast: {settings.backtest.windows} windows of {settings.horizon} periods "
        f"({settings.frequency}). "
        f"Champion selection SMAPE {summary['champion_smape']:.2f} (M4 scale, 0-200) vs seasonal naive "
        f"{summary['seasonal_naive_smape']:.2f}; selection mode {decision['mode']} on "
        f"{settings.selection.metric.upper()}."
    )
    with mlflow.start_run(run_name=f"evaluation-{context.run_id[:8]}", description=description,
                          tags=tracking.run_tags(context)) as run:
        mlflow.log_input(_evaluated_dataset(history_fingerprint), context="evaluation")
        mlflow.log_params(
            {
                "frequency": settings.frequency,
                "horizon": settings.horizon,
                "windows": settings.backtest.windows,
                "step": settings.step,
                "season_length": settings.season,
                "models": ",".join(sorted(evaluation["model"].unique())),
                "series": int(evaluation["unique_id"].nunique()),
                "data_fingerprint": history_fingerprint,
                "settings_fingerprint": settings.fingerprint(),
                "code_version": _code_version(),
                "selection_mode_setting": settings.selection.mode,
                "selection_metric": settings.selection.metric,
                "closed_weekdays": ",".join(settings.closed.weekdays),
                "closed_dates": len(settings.closed.dates),
                "selection_mode": decision["mode"],
                "champion_for_all": decision.get("champion_for_all", ""),
            }
        )
        metric = settings.selection.metric
        for name in sorted({"smape", metric}):
            for model, row in _per_model(evaluation, name).iterrows():
                mlflow.log_metrics({f"{name}_mean_{model}": row["mean"], f"{name}_median_{model}": row["median"]})
        mlflow.log_metrics(
            {
                "smape_champion_selection": summary["champion_smape"],
                "smape_seasonal_naive": summary["seasonal_naive_smape"],
                "smape_best_single_model": summary["best_single_smape"],
                f"{metric}_champion_selection": summary["champion_score"],
                **{
                    name: decision[key]
                    for key, name in (("per_series_last_window_score", f"{metric}_last_window_per_series"),
                                      ("global_last_window_score", f"{metric}_last_window_global"))
                    if key in decision
                },
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            evaluation.to_parquet(folder / "series_evaluation.parquet", index=False)
            (folder / "smape_distribution.png").write_bytes(plot_smape_distribution(evaluation))
            (folder / "win_share.png").write_bytes(plot_win_share(summary["win_share"]))
            mlflow.log_artifacts(str(folder))
        context.log.info(f"MLflow run {run.info.run_id} in experiment {settings.experiment_name}")
        return run.info.run_id, tracking.run_url(experiment_id, run.info.run_id)


@dg.asset(
    key=["forecasting", "series_champions"],
    group_name="forecasting",
    # The backtest too: the selection guard re-scores its last window.
    deps=[["forecasting", "series_evaluation"], ["forecasting", "backtest_forecasts"]],
    kinds={"duckdb", "pandas"},
    owners=OWNERS,
    automation_condition=expensive_condition(),
    description="The per-series models: for each series, the model with the lowest mean backtest score on "
    "settings.selection.metric (SMAPE by default; ties to the simpler model), with the runner-up and the "
    "seasonal-naive SMAPE beside it. With "
    "selection.mode 'auto' (the default) per-series choice is used only when it held up on each series' last "
    "backtest window; otherwise every series gets the one model that did best overall.",
)
def series_champions(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    evaluation = warehouse.read(EVALUATION)
    _, windows = evaluate_stored_backtest(warehouse, project.settings)
    champions, decision = _choose(project.settings, evaluation, windows)
    metric = project.settings.selection.metric
    summary = selection_summary(evaluation, champions, metric)
    warehouse.replace(CHAMPIONS, champions)
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
            CHAMPIONS,
            {"smape": schemas.SMAPE_DESCRIPTION},
            win_share=dg.MetadataValue.json({k: round(v, 4) for k, v in summary["win_share"].items()}),
            selection_mode=decision["mode"],
            selection_reason=decision["reason"],
            selection_metric=metric,
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
    key=["forecasting", "forecasts"],
    group_name="forecasting",
    deps=[["registry", "sales_forecast_model"]],
    kinds={"mlflow", "duckdb"},
    owners=OWNERS,
    automation_condition=downstream_condition(),
    description="The next horizon of every series, scored by loading models:/sales_forecast@champion (the "
    "registry round trip a batch job makes), one model group of it (at most settings.compute.bucket_series "
    "series) at a time, with 80% and 95% "
    "prediction intervals calibrated on the backtest "
    "(settings.intervals), clipped at zero unless the history has negative values (returns).",
)
def forecasts(
    context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse, mlflow_tracking: MlflowTracking
):
    settings = project.settings
    mlflow_tracking.activate()
    model, version = load_champion(settings.registered_model_name)
    forecaster = model.unwrap_python_model().forecaster
    # One model group at a time, each let go before the next: the process holds one group's fitted models.
    forecaster.kept_groups = 1
    size = settings.compute.bucket_series
    chunks = [c for ids in forecaster.group_series().values() for c in fixed_chunks(ids, size)]
    folder = project.paths.engine / "scoring"
    rows = score_by_chunk(
        model.predict, chunks, forecaster.horizon, folder,
        lambda parts: warehouse.replace_from_parquet(FORECASTS, parts, order_by="unique_id, ds"), context.log.info,
    )
    shutil.rmtree(folder, ignore_errors=True)
    n_series = len(forecaster.series)
    context.log.info(f"{rows} forecast rows for {n_series} series from {settings.registered_model_name}"
                     f" version {version}")
    head = warehouse.query(f"select * from {FORECASTS} order by unique_id, ds limit 10")
    span = warehouse.query(f"select min(ds) as first, max(ds) as last from {FORECASTS}").iloc[0]
    return dg.MaterializeResult(
        metadata={
            **table_metadata(head, FORECASTS),
            "dagster/row_count": rows,
            "model_version": version,
            "model_uri": f"models:/{settings.registered_model_name}@champion",
            "series": n_series,
            "first_period": str(pd.Timestamp(span["first"]).date()),
            "last_period": str(pd.Timestamp(span["last"]).date()),
        }
    )


def _clipped(warehouse: Warehouse, settings: Settings) -> bool:
    """Whether every series is clipped at 0, as ChampionForecaster decides it from the same history."""
    clip = settings.intervals.clip
    if clip != "auto":
        return clip == "always"
    negative = warehouse.query(f"select count(*) as n from ({ELIGIBLE_SQL}) where y < 0").iloc[0]["n"]
    return int(negative) == 0


forecasting_assets = [backtest_forecasts, series_evaluation, series_champions, forecasts]
forecasting_checks = [
    pandera_check(
        asset=["forecasting", "backtest_forecasts"],
        name=CONTRACT_CHECK,
        table=BACKTEST,
        schema=lambda _wh, _p: schemas.BACKTEST_FORECASTS,
        blocking=True,
        description="Backtest rows are unique and every forecast date is after its cutoff (no leakage).",
    ),
    pandera_check(
        asset=["forecasting", "series_evaluation"],
        name=CONTRACT_CHECK,
        table=EVALUATION,
        schema=lambda _wh, _p: schemas.SERIES_EVALUATION,
        blocking=True,
        description="One row per series and model with metrics in range (SMAPE 0-200).",
    ),
    pandera_check(
        asset=["forecasting", "series_champions"],
        name=CONTRACT_CHECK,
        table=CHAMPIONS,
        schema=lambda _wh, _p: schemas.SERIES_CHAMPIONS,
        blocking=True,
        description="Exactly one champion per series.",
    ),
    pandera_check(
        asset=["forecasting", "forecasts"],
        name=CONTRACT_CHECK,
        table=FORECASTS,
        schema=lambda wh, project: schemas.forecasts_schema(
            project.settings.interval_levels, non_negative=_clipped(wh, project.settings)
        ),
        blocking=True,
        description="One row per series and future period, inside ordered interval bounds; non-negative when "
        "forecasts are clipped at 0 (settings.intervals.clip).",
    ),
]
