"""The champions refit on their full history and registered as one model version, promoted behind the gate.

Calibration first, from the champions' backtest rows only, a bucket of series at a time (it pools every series'
scaled errors, a float and a step per row), then the refit by model group on the engine: neither the history nor
the backtest passes through this process. The refit's parts stay on disk until MLflow has copied them in (the
model is that folder), and are removed after.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_assets.forecasting.eligible import ELIGIBLE_SQL
from mlops_assets.forecasting.zoo import default_models
from mlops_assets.registry import model_registry
from mlops_assets.registry.model_registry import PromotionDecision, RegisteredVersion
from mlops_assets.registry.refit import RefitRun, champion_errors_by_chunk, mean_abs_actuals, refit_by_group
from mlops_assets.registry.served import Unserved, served_champions, unserved_champions
from mlops_assets.settings import Settings
from mlops_assets.warehouse import Connect


@dataclass(frozen=True)
class Inputs:
    """What a registration is made from, as the registry step reads it from the warehouse."""

    champions: pd.DataFrame
    evaluation: pd.DataFrame
    backtest: str  # the stored backtest table
    champions_table: str
    data: str  # the eligible history's fingerprint
    fingerprint: str  # of everything the model is made from (data, settings, regressors)
    regressors_sql: str | None
    regressors_fingerprint: str
    last_period: pd.Timestamp


@dataclass(frozen=True)
class Registration:
    version: RegisteredVersion
    decision: PromotionDecision
    run: RefitRun
    coverage: dict[int, float]
    series: int
    unserved: Unserved

    def summary(self, settings: Settings) -> dict[str, object]:
        """The registration as the registry step's metadata shows it."""
        decision, name = self.decision, settings.registered_model_name
        return {
            "version": self.version.version,
            "model_uri": self.version.model_uri,
            "registered": not self.version.reused,
            "promoted": decision.promoted,
            "promotion_reason": decision.reason,
            "promotion_metric": decision.metric,
            "new_score": float(decision.new_score),
            **({"champion_score_before": float(decision.current_score)} if decision.current_score is not None
               else {}),
            "champion_version": model_registry.alias_version(name, model_registry.CHAMPION) or "",
            "series": self.series,
            **self.unserved.metadata(),
            "engine": settings.compute.engine,
            "model_groups": len(self.run.groups),
            "refit_cpu_seconds": round(sum(r.cpu_seconds for r in self.run.reports), 1),
            "interval_method": settings.intervals.method,
            "clipped_at_zero": self.run.forecaster.clipped,
            **{f"last_window_coverage_{lv}": float(cov) for lv, cov in self.coverage.items()},
        }


def missing_history(con, champions_table: str) -> list[str]:
    """Champion series that have no eligible history (a registration must not start then)."""
    return [u for (u,) in con.execute(
        f"select unique_id::varchar as u from {champions_table} where unique_id::varchar not in "
        f"(select unique_id::varchar from ({ELIGIBLE_SQL})) order by 1").fetchall()]


def refit_and_register(connect: Connect, settings: Settings, inputs: Inputs, *, root: Path,
                       evaluation_run: str | None, selection: dict, dagster_run_id: str,
                       log: Callable[[str], None], warn: Callable[[str], None]) -> Registration:
    name, champions = settings.registered_model_name, inputs.champions
    actuals = mean_abs_actuals(connect, ELIGIBLE_SQL)
    errors = champion_errors_by_chunk(connect, inputs.backtest, inputs.champions_table, champions, actuals, settings)
    run = refit_by_group(
        connect, ELIGIBLE_SQL, champions, inputs.backtest, root, inputs.fingerprint, settings,
        len(default_models(settings)), errors.calibration, inputs.regressors_sql, log,
    )
    forecaster = run.forecaster
    unserved = unserved_champions(forecaster.series)
    (warn if unserved.count else log)(unserved.message())
    # The version claims only what it serves: a replaced champion is registered as the model serving it.
    served = served_champions(champions, forecaster.series, inputs.evaluation)
    # The check of the backtest calibration: set on the earlier windows, scored on the last one.
    coverage = errors.coverage(champions, actuals, settings, clip=forecaster.clipped)
    del errors
    held = ", ".join(f"{cov:.1f}% for {lv}%" for lv, cov in coverage.items())
    log(f"intervals: {settings.intervals.method}" + (f" (held {held} of the last backtest window)" if held else "")
        + f"; clipped at 0: {forecaster.clipped}")
    version, decision = model_registry.register_and_gate(
        forecaster,
        served,
        inputs.evaluation,
        name=name,
        run_id=evaluation_run,
        description=f"{len(champions)} series of gold.sales_data_for_forecast up to {inputs.last_period.date()}"
        f" (data {inputs.data}); frequency {settings.frequency}, horizon {settings.horizon}, "
        f"{settings.backtest.windows} backtest windows; Dagster run {dagster_run_id}.",
        tags={
            "data_fingerprint": inputs.data,
            "settings_fingerprint": settings.fingerprint(),
            "dagster_run_id": dagster_run_id,
            "frequency": settings.frequency,
            "horizon": str(settings.horizon),
            "selection_metric": settings.selection.metric,
            **({"regressors_fingerprint": inputs.regressors_fingerprint} if inputs.regressors_fingerprint else {}),
        },
        tolerance=settings.promotion_tolerance,
        selection=selection,
        metric=settings.selection.metric,
    )
    shutil.rmtree(root, ignore_errors=True)
    if version.reused:
        log(f"{name} v{version.version} was already registered from these inputs (an earlier run "
            "stopped before recording it): reused, nothing registered")
    (log if decision.promoted else warn)(
        f"{name} v{version.version}: {'promoted to champion' if decision.promoted else 'not promoted'}: "
        f"{decision.reason}")
    return Registration(version, decision, run, coverage, len(champions), unserved)
