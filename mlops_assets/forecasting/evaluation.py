"""The stored backtest scored and the champions chosen from it, and the evaluation's MLflow run."""

from __future__ import annotations

import math
import tempfile
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd

from mlops_assets.forecasting.eligible import ELIGIBLE_SQL, eligible_summary
from mlops_assets.forecasting.engine import evaluate_by_bucket
from mlops_assets.forecasting.selection import choose_from_evaluations
from mlops_assets.forecasting.zoo import guard_metric, guard_windows
from mlops_assets.reporting.plots import plot_smape_distribution, plot_win_share
from mlops_assets.settings import Settings
from mlops_assets.warehouse import Connect


def evaluate_stored_backtest(connect: Connect, backtest: str, settings: Settings):
    """The evaluation and the guard's window evaluations, read from the stored backtest one bucket at a time."""
    with connect() as con:
        n_series, _ = eligible_summary(con)
    return evaluate_by_bucket(
        connect, backtest, ELIGIBLE_SQL, settings.season,
        math.ceil(n_series / settings.compute.bucket_series), guard_windows(settings),
    )


def evaluation_fingerprint(backtest_fingerprint: str | None, settings: Settings) -> str | None:
    """The backtest's fingerprint and how the selection ranks: a rule change is a new run, not a new backtest."""
    if not backtest_fingerprint:
        return None
    return f"{backtest_fingerprint}-{settings.selection.metric}-{guard_metric(settings)}-{guard_windows(settings)}"


def choose(settings: Settings, evaluation: pd.DataFrame, windows):
    """The champions and the selection's decision, as settings.selection asks."""
    return choose_from_evaluations(
        evaluation,
        windows,
        mode=settings.selection.mode,
        tolerance=settings.selection.global_tolerance,
        margin=settings.selection.margin,
        metric=settings.selection.metric,
        guard_metric=guard_metric(settings),
    )


def per_model(evaluation: pd.DataFrame, metric: str = "smape") -> pd.DataFrame:
    return evaluation.groupby("model")[metric].agg(["mean", "median"]).round(4).sort_values("mean")


def code_version() -> str:
    return version("mlops_assets")


def evaluated_dataset(history_fingerprint: str):
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


def log_evaluation_run(settings: Settings, history_fingerprint: str, evaluation: pd.DataFrame, summary: dict,
                       decision: dict, *, run_name: str, tags: dict[str, str]) -> str:
    """One MLflow run of the evaluation: the dataset, the settings, per-model metrics, the plots; its id."""
    description = (
        f"Backtest of {evaluation['model'].nunique()} models on {evaluation['unique_id'].nunique()} series of "
        f"gold.sales_data_for_forecast: {settings.backtest.windows} windows of {settings.horizon} periods "
        f"({settings.frequency}). "
        f"Champion selection SMAPE {summary['champion_smape']:.2f} (M4 scale, 0-200) vs seasonal naive "
        f"{summary['seasonal_naive_smape']:.2f}; selection mode {decision['mode']} on "
        f"{settings.selection.metric.upper()}."
    )
    with mlflow.start_run(run_name=run_name, description=description, tags=tags) as run:
        mlflow.log_input(evaluated_dataset(history_fingerprint), context="evaluation")
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
                "code_version": code_version(),
                "selection_mode_setting": settings.selection.mode,
                "selection_metric": settings.selection.metric,
                "guard_metric": guard_metric(settings),
                "guard_windows": guard_windows(settings),
                "closed_weekdays": ",".join(settings.closed.weekdays),
                "closed_dates": len(settings.closed.dates),
                "selection_mode": decision["mode"],
                "champion_for_all": decision.get("champion_for_all", ""),
            }
        )
        metric, guard = settings.selection.metric, guard_metric(settings)
        for name in sorted({"smape", metric}):
            for model, row in per_model(evaluation, name).iterrows():
                mlflow.log_metrics({f"{name}_mean_{model}": row["mean"], f"{name}_median_{model}": row["median"]})
        mlflow.log_metrics(
            {
                "smape_champion_selection": summary["champion_smape"],
                "smape_seasonal_naive": summary["seasonal_naive_smape"],
                "smape_best_single_model": summary["best_single_smape"],
                f"{metric}_champion_selection": summary["champion_score"],
                **{
                    name: decision[key]
                    for key, name in (("per_series_last_window_score", f"{guard}_last_window_per_series"),
                                      ("global_last_window_score", f"{guard}_last_window_global"))
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
        return run.info.run_id
