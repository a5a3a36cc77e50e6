"""Register the levels' reconciled forecasts beside the series' model, behind the coherence gate.

The rows are forecasting.forecasts_by_level's default rows above the series; the series' model version they
reconcile is the one that scored forecasting.forecasts (its ``model_version`` column). The champion alias of
the levels' model moves only when every reconciled method adds up, tested again here as the blocking
``coherent`` check tests it: a run that skipped or failed the check cannot move it.
"""

from __future__ import annotations

import pandas as pd

from mlops_assets.levels.hierarchy import bottom_level_name, build_hierarchy, series_attributes
from mlops_assets.levels.reconcile import coherence_gaps
from mlops_assets.registry.level_model import LevelForecasts, LevelsRegistration, default_rows, register_levels
from mlops_assets.settings import Settings
from mlops_assets.warehouse import Connect

# The coherent check's tolerance (relative to the sum of the series, at least one unit).
COHERENCE_TOLERANCE = 1e-6


def reconciled_series_version(connect: Connect, forecasts_table: str) -> str:
    """The one series' model version whose forecasts the levels reconcile, from the stored forecasts."""
    with connect() as con:
        found = [v for (v,) in con.execute(
            f"select distinct model_version::varchar from {forecasts_table} order by 1").fetchall()]
    if len(found) != 1:
        raise ValueError(f"{forecasts_table} holds model versions {found}: the levels reconcile one version's "
                         "forecasts; materialize it again")
    return found[0]


def register_level_forecasts(connect: Connect, settings: Settings, forecasts_by_level: pd.DataFrame, *,
                             gold: str, forecasts_table: str, model_name: str,
                             tags: dict[str, str], run_tags: dict[str, str] | None = None,
                             ) -> tuple[LevelsRegistration, LevelForecasts]:
    """Register the default rows as a version of ``model_name``; champion only if they add up."""
    bottom = bottom_level_name(settings)
    forecasts = LevelForecasts(default_rows(forecasts_by_level, bottom), tuple(settings.interval_levels), bottom,
                               reconciled_series_version(connect, forecasts_table))
    with connect() as con:
        hierarchy = build_hierarchy(series_attributes(con, gold, settings), settings)
    gaps = coherence_gaps(forecasts_by_level, hierarchy)
    worst = float(gaps["max_relative_gap"].max()) if len(gaps) else float("nan")
    coherent = bool(len(gaps)) and worst <= COHERENCE_TOLERANCE
    why = (f"largest relative gap {worst:.2g} over {len(gaps)} reconciled methods, tolerance "
           f"{COHERENCE_TOLERANCE:g}" if len(gaps) else "no reconciled method to test")
    method = str(forecasts.rows["method"].iloc[0])
    registration = register_levels(forecasts, name=model_name, coherent=coherent, why=why,
                                   tags={**tags, "reconciliation": method}, run_tags=run_tags)
    return registration, forecasts
