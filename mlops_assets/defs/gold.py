"""Gold layer: one row per series and period, the table every forecast starts from."""


import dagster as dg

from mlops_assets import catalog
from mlops_assets.catalog import GOLD, REGRESSORS, SERIES_EXCLUDED
from mlops_assets.gold import stored
from mlops_assets.gold.buckets import gold_by_bucket, regressors_by_bucket
from mlops_assets.reporting.plots import plot_sales_totals
from mlops_assets.reporting.render import png_markdown
from mlops_assets.wiring.checks import contract_check
from mlops_assets.wiring.conditions import downstream_condition
from mlops_assets.wiring.metadata import OWNERS, stored_table_metadata
from mlops_assets.wiring.resources import ProjectResource, Warehouse

EXCLUDED_SHARE_CHECK = "excluded_share"
RAW_INPUTS = [catalog.raw(t).key for t in ("sales_orders", "products", "customers", "promotions", "series")]


def _gold_spec(table: catalog.Table) -> dg.AssetSpec:
    return dg.AssetSpec(table.key, description=table.description, deps=RAW_INPUTS, group_name="gold",
                        kinds={"duckdb", "pandas"}, owners=OWNERS, automation_condition=downstream_condition())


@dg.multi_asset(specs=[_gold_spec(GOLD), _gold_spec(SERIES_EXCLUDED)], can_subset=False)
def gold_tables(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    settings = project.settings
    folder = project.paths.engine / "gold"
    parts = gold_by_bucket(warehouse.connection, settings, folder, context.log.info)
    warehouse.replace_many_from_parquet({GOLD.name: (parts.patterns["gold"], GOLD.order_by),
                                         SERIES_EXCLUDED.name: (parts.patterns["excluded"], SERIES_EXCLUDED.order_by)},
                                        then_remove=folder)
    with warehouse.connection() as con:
        stats = stored.gold_stats(con)
        summary = stored.exclusion_summary(con, settings.gold.warn_excluded_share)
    context.log.info(
        f"{GOLD}: {stats.rows} rows, {stats.series} series from {settings.source}, {stats.imputed} missing values "
        f"interpolated" + (f" ({parts.buckets} buckets of series)" if parts.buckets > 1 else "")
    )
    (context.log.warning if summary.too_many else context.log.info)(f"{SERIES_EXCLUDED}: {summary.message()}")
    yield dg.MaterializeResult(asset_key=GOLD.key, metadata=stored_table_metadata(
        warehouse, GOLD,
        series=stats.series,
        imputed_values=stats.imputed,
        first_period=str(stats.first.date()) if stats.series else "",
        last_period=str(stats.last.date()) if stats.series else "",
        total_sales_plot=dg.MetadataValue.md(png_markdown(plot_sales_totals(stats.totals, stats.series),
                                                          "total sales per period")) if stats.series else "",
    ))
    yield dg.MaterializeResult(asset_key=SERIES_EXCLUDED.key, metadata=stored_table_metadata(
        warehouse, SERIES_EXCLUDED,
        by_reason=dg.MetadataValue.json(summary.by_reason),
        excluded_share=round(summary.share, 4),
        summary=summary.message(),
    ))


@dg.asset_check(
    asset=SERIES_EXCLUDED.key,
    name=EXCLUDED_SHARE_CHECK,
    blocking=False,
    description="Warns when more than gold.warn_excluded_share of the series are kept out of forecasting: "
    "the run still succeeds, but a forecast of few series should not pass quietly.",
)
def excluded_share_check(warehouse: Warehouse, project: ProjectResource) -> dg.AssetCheckResult:
    with warehouse.connection() as con:
        summary = stored.exclusion_summary(con, project.settings.gold.warn_excluded_share)
        examples = stored.exclusion_examples(con)
    return dg.AssetCheckResult(
        passed=not summary.too_many,
        severity=dg.AssetCheckSeverity.WARN,
        description=summary.message(),
        metadata={
            "series": summary.series,
            "excluded": summary.excluded,
            "excluded_share": round(summary.share, 4),
            "threshold": summary.threshold,
            "by_reason": dg.MetadataValue.json(summary.by_reason),
            "examples": dg.MetadataValue.md(examples.to_markdown(index=False) if len(examples) else "_none_"),
        },
    )


@dg.asset(
    key=REGRESSORS.key,
    group_name="gold",
    deps=[GOLD.key, catalog.RAW_PROMOTIONS.key, catalog.RAW_SERIES.key],
    kinds={"duckdb", "pandas"},
    owners=OWNERS,
    automation_condition=downstream_condition(),
    description=REGRESSORS.description,
)
def regressors(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    settings = project.settings
    declared = settings.regressors.series_columns
    folder = project.paths.engine / "regressors"
    parts = regressors_by_bucket(warehouse.connection, GOLD.name, settings, folder)
    warehouse.replace_from_parquet(REGRESSORS.name, parts.patterns["regressors"], order_by=REGRESSORS.order_by,
                                   then_remove=folder)
    with warehouse.connection() as con:
        rows, promoted, planned = stored.regressor_counts(con)
        # A misspelt declaration would otherwise be a column of zeros that nobody notices.
        empty = stored.columns_without_values(con, list(declared))
    context.log.info(f"{REGRESSORS}: {rows} rows; {planned} future periods under a planned promotion"
                     + (f"; series file columns {dict(declared)}" if declared else ""))
    if empty:
        context.log.warning(f"regressors.series_columns {empty}: no value in any row of raw.series, so 0 "
                            "throughout; is the file's column named otherwise? Map it in column_mapping.series")
    return dg.MaterializeResult(metadata={
        **stored_table_metadata(warehouse, REGRESSORS, catalog.regressor_columns(settings)),
        "promoted_share": promoted / rows if rows else 0.0,
        "planned_promotion_periods": planned,
        "holiday_country": settings.regressors.country or "",
        "series_columns": dg.MetadataValue.json(dict(declared)),
        "series_columns_without_values": dg.MetadataValue.json(empty),
        "used_by_lightgbm": dg.MetadataValue.json(settings.regressors.use),
    })


gold_checks = [*(contract_check(table) for table in (REGRESSORS, GOLD, SERIES_EXCLUDED)), excluded_share_check]
