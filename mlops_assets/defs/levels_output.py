"""Every level in the tables people read: serving.sales_overall_by_level with a PNG per group, and the levels'
issued forecasts kept and scored once actuals arrive (monitoring.forecast_history_by_level, _accuracy_by_level).

Opt-in like defs/levels.py: only a declared ``hierarchy:`` wires them (docs/levels.md).
"""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from mlops_assets.catalog import (
    EVALUATION_BY_LEVEL,
    FORECAST_ACCURACY_BY_LEVEL,
    FORECAST_HISTORY_BY_LEVEL,
    FORECASTS_BY_LEVEL,
    GOLD,
    SALES_OVERALL_BY_LEVEL,
)
from mlops_assets.monitoring.accuracy import issue_already_stored, issue_sql
from mlops_assets.monitoring.accuracy_by_level import ISSUE_VERSION, issue_source, level_summary, score_levels
from mlops_assets.reporting.render import png_markdown
from mlops_assets.serving.overall_by_level import build_overall_by_level
from mlops_assets.serving.plots import plot_top_series
from mlops_assets.settings import load_settings
from mlops_assets.warehouse import row_count
from mlops_assets.wiring.checks import contract_check
from mlops_assets.wiring.conditions import downstream_condition
from mlops_assets.wiring.metadata import OWNERS, column_schema, preview, stored_table_metadata
from mlops_assets.wiring.resources import ProjectResource, Warehouse


def level_output_definitions() -> dg.Definitions:
    """The assets and checks, built on call so that only a declared hierarchy wires them."""

    @dg.asset(key=SALES_OVERALL_BY_LEVEL.key, group_name="serving", deps=[GOLD.key, FORECASTS_BY_LEVEL.key],
              kinds={"duckdb", "parquet"}, owners=OWNERS, automation_condition=downstream_condition(),
              description=SALES_OVERALL_BY_LEVEL.description)
    def sales_overall_by_level(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
        settings = project.settings
        folder = project.paths.plots / "levels"
        with warehouse.connection() as con:
            built = build_overall_by_level(con, GOLD.name, FORECASTS_BY_LEVEL.name, settings,
                                           project.paths.engine / "sales_overall_by_level", folder,
                                           settings.compute.bucket_series, settings.plots.max_series)
        rows = warehouse.replace_from_parquet(SALES_OVERALL_BY_LEVEL.name, built.pattern,
                                              order_by=SALES_OVERALL_BY_LEVEL.order_by, then_remove=built.parts)
        plots = built.plots
        context.log.info(f"{SALES_OVERALL_BY_LEVEL}: {rows} rows ({built.groups} groups, the series in "
                         f"{built.ranges} ranges); PNGs of {len(plots.written)} groups in {folder} "
                         f"({len(plots.drawn)} drawn), {plots.unplotted} groups not plotted")
        by_level = warehouse.query(f"select level, count(distinct unique_id) as nodes from {SALES_OVERALL_BY_LEVEL} "
                                   "group by 1 order by 1")
        return dg.MaterializeResult(metadata={
            **stored_table_metadata(
                warehouse, SALES_OVERALL_BY_LEVEL,
                nodes_per_level=dg.MetadataValue.json(dict(zip(by_level["level"], map(int, by_level["nodes"]),
                                                               strict=True))),
                plots_folder=dg.MetadataValue.path(str(folder)),
                plotted_groups=len(plots.written),
                unplotted_groups=plots.unplotted,
                top_groups=dg.MetadataValue.md(png_markdown(plot_top_series(built.top_rows), "top groups")),
            ),
            "dagster/column_schema": column_schema(built.columns, SALES_OVERALL_BY_LEVEL.columns),
        })

    @dg.asset(key=FORECAST_HISTORY_BY_LEVEL.key, group_name="monitoring", deps=[FORECASTS_BY_LEVEL.key],
              kinds={"duckdb"}, owners=OWNERS, automation_condition=downstream_condition(),
              description=FORECAST_HISTORY_BY_LEVEL.description)
    def forecast_history_by_level(context: dg.AssetExecutionContext, project: ProjectResource,
                                  warehouse: Warehouse):
        issued_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        table = FORECAST_HISTORY_BY_LEVEL.name
        with warehouse.connection() as con:
            source = issue_source(con, FORECASTS_BY_LEVEL.name, project.settings.frequency)
            before = row_count(con, table)
            stored = source is None or issue_already_stored(con, table, source, version=ISSUE_VERSION)
            sql = None if stored else issue_sql(con, source)
        total = before if stored else warehouse.append_query(table, sql, [issued_at])
        context.log.info(f"{total - before} forecast rows of the levels appended ({total} in the history)")
        return dg.MaterializeResult(metadata=stored_table_metadata(warehouse, FORECAST_HISTORY_BY_LEVEL,
                                                                   rows_appended=total - before))

    @dg.asset(key=FORECAST_ACCURACY_BY_LEVEL.key, group_name="monitoring",
              deps=[FORECAST_HISTORY_BY_LEVEL.key, GOLD.key], kinds={"duckdb"}, owners=OWNERS,
              automation_condition=downstream_condition(), description=FORECAST_ACCURACY_BY_LEVEL.description)
    def forecast_accuracy_by_level(context: dg.AssetExecutionContext, project: ProjectResource,
                                   warehouse: Warehouse):
        settings = project.settings
        table = FORECAST_ACCURACY_BY_LEVEL.name
        with warehouse.connection() as con:
            scored = score_levels(con, history=FORECAST_HISTORY_BY_LEVEL.name, gold=GOLD.name, settings=settings,
                                  parts=project.paths.engine / "forecast_accuracy_by_level",
                                  range_series=settings.compute.bucket_series)
        if scored.rows:
            warehouse.replace_from_parquet(table, scored.pattern, order_by=FORECAST_ACCURACY_BY_LEVEL.order_by,
                                           then_remove=scored.parts)
        else:
            warehouse.replace(table, scored.columns)
        per_level = pd.DataFrame()
        if scored.rows:
            with warehouse.connection() as con:
                per_level = level_summary(con, table, EVALUATION_BY_LEVEL.name)
        context.log.info(f"{scored.rows} issued forecasts of the levels scored against actuals")
        return dg.MaterializeResult(metadata={
            **stored_table_metadata(warehouse, FORECAST_ACCURACY_BY_LEVEL, forecasts_scored=scored.rows),
            "per_level": preview(per_level, rows=20),
            "dagster/column_schema": column_schema(scored.columns, FORECAST_ACCURACY_BY_LEVEL.columns),
        })

    return dg.Definitions(
        assets=[sales_overall_by_level, forecast_history_by_level, forecast_accuracy_by_level],
        asset_checks=[contract_check(t) for t in (SALES_OVERALL_BY_LEVEL, FORECAST_HISTORY_BY_LEVEL,
                                                  FORECAST_ACCURACY_BY_LEVEL)],
    )


@dg.definitions
def levels_output() -> dg.Definitions:
    if load_settings().hierarchy is None:
        return dg.Definitions()
    return level_output_definitions()
