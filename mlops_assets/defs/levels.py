"""Every level of the business forecast (total, category, brand, product, or declared columns), reconciled.

On for order lines unless ``hierarchy: null``, off for series files unless declared: without a hierarchy the
assets do not exist and the graph, and the cost of a run, are what they were (docs/levels.md).
"""

import dagster as dg

from mlops_assets import catalog
from mlops_assets.catalog import EVALUATION_BY_LEVEL, FORECASTS_BY_LEVEL
from mlops_assets.levels.hierarchy import build_hierarchy, series_attributes
from mlops_assets.levels.layer import forecast_levels
from mlops_assets.levels.reconcile import coherence_gaps
from mlops_assets.settings import load_settings
from mlops_assets.wiring.checks import contract_check
from mlops_assets.wiring.conditions import contract_check_condition, expensive_condition
from mlops_assets.wiring.failures import engine_failures
from mlops_assets.wiring.metadata import OWNERS, table_metadata
from mlops_assets.wiring.resources import ProjectResource, Warehouse

COHERENCE_CHECK = "coherent"
# A group may differ from the sum of its series by this much (float noise of the reconciliation's algebra).
COHERENCE_TOLERANCE = 1e-6


def level_definitions() -> dg.Definitions:
    """The levels' assets and checks, built on call so that only a declared hierarchy wires them."""
    # After the chain's forecasts: the series' base forecasts are its champions' (docs/levels.md).
    deps = [catalog.GOLD.key, catalog.SERIES_EXCLUDED.key, catalog.BACKTEST.key, catalog.CHAMPIONS.key,
            catalog.FORECASTS.key]

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(FORECASTS_BY_LEVEL.key, group_name="forecasting", deps=deps, owners=OWNERS,
                         kinds={"statsforecast", "lightgbm", "duckdb"}, automation_condition=expensive_condition(),
                         description=FORECASTS_BY_LEVEL.description),
            dg.AssetSpec(EVALUATION_BY_LEVEL.key, group_name="forecasting", deps=deps, owners=OWNERS,
                         kinds={"duckdb"}, automation_condition=expensive_condition(),
                         description=EVALUATION_BY_LEVEL.description),
        ],
        can_subset=False,
    )
    def levels_forecast(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
        try:
            with engine_failures():
                result = forecast_levels(warehouse.connection, project.settings,
                                         folder=project.paths.engine / "levels", log=context.log.info)
        except ValueError as err:
            raise dg.Failure(description=str(err)) from err
        warehouse.write(replace={FORECASTS_BY_LEVEL.name: result.forecasts,
                                 EVALUATION_BY_LEVEL.name: result.evaluation})
        summary = result.summary
        context.log.info(f"levels {summary['levels']}: {summary['forecast_nodes']} nodes forecast in "
                         f"{summary['buckets']} bucket(s), reconciled by {result.method} (backtest's choice "
                         f"{summary['chosen_by_backtest']}; relative to BottomUp {summary['relative_to_bottom_up']})")
        for name, why in summary["failed_methods"].items():
            context.log.warning(f"reconciliation {name} left out: {why}")
        default = result.evaluation[result.evaluation["is_default"]].set_index("level")["smape"].round(3)
        yield dg.MaterializeResult(asset_key=FORECASTS_BY_LEVEL.key, metadata=table_metadata(
            result.forecasts, FORECASTS_BY_LEVEL.name, FORECASTS_BY_LEVEL.columns,
            method=result.method,
            chosen_by_backtest=summary["chosen_by_backtest"],
            buckets=summary["buckets"],
            nodes_per_level=dg.MetadataValue.json(summary["nodes"]),
            not_forecast_series=summary["not_forecast_series"],
            selection_per_level=dg.MetadataValue.json(summary["selection"]),
            upper_nodes_forecast=summary["upper_nodes_forecast"],
            nonnegative=summary["nonnegative"],
            failed_methods=dg.MetadataValue.json(summary["failed_methods"]),
        ))
        yield dg.MaterializeResult(asset_key=EVALUATION_BY_LEVEL.key, metadata=table_metadata(
            result.evaluation, EVALUATION_BY_LEVEL.name, EVALUATION_BY_LEVEL.columns,
            default_method_smape_per_level=dg.MetadataValue.json(default.to_dict()),
            relative_to_bottom_up=dg.MetadataValue.json(summary["relative_to_bottom_up"]),
        ))

    @dg.asset_check(asset=FORECASTS_BY_LEVEL.key, name=COHERENCE_CHECK, blocking=True,
                    automation_condition=contract_check_condition(),
                    description="For every reconciled method, group and period, the group's forecast equals the "
                    "sum of its series' forecasts within 1e-6 (relative to the sum, at least 1 unit).")
    def coherent(warehouse: Warehouse, project: ProjectResource) -> dg.AssetCheckResult:
        settings = project.settings
        with warehouse.connection() as con:
            attributes = series_attributes(con, catalog.GOLD.name, settings)
        gaps = coherence_gaps(warehouse.read(FORECASTS_BY_LEVEL.name), build_hierarchy(attributes, settings))
        worst = float(gaps["max_relative_gap"].max()) if len(gaps) else 0.0
        return dg.AssetCheckResult(
            passed=bool(len(gaps)) and worst <= COHERENCE_TOLERANCE,
            metadata={"max_relative_gap": worst, "gaps": dg.MetadataValue.md(gaps.to_markdown(index=False))},
        )

    return dg.Definitions(
        assets=[levels_forecast],
        asset_checks=[coherent, contract_check(FORECASTS_BY_LEVEL), contract_check(EVALUATION_BY_LEVEL)],
    )


@dg.definitions
def levels() -> dg.Definitions:
    if load_settings().hierarchy is None:
        return dg.Definitions()
    return level_definitions()
