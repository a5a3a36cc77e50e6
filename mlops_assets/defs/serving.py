"""Serving: the table and the plots that people and tools downstream read."""


import dagster as dg

from mlops_assets.catalog import FORECASTS, GOLD, SALES_OVERALL
from mlops_assets.reporting.render import png_markdown
from mlops_assets.serving.overall_by_range import build_overall_by_range
from mlops_assets.serving.plots import plot_top_series
from mlops_assets.wiring.checks import contract_check
from mlops_assets.wiring.conditions import downstream_condition, freshness_policy
from mlops_assets.wiring.metadata import OWNERS, column_schema, stored_table_metadata
from mlops_assets.wiring.resources import ProjectResource, Warehouse


@dg.asset(
    key=SALES_OVERALL.key,
    group_name="serving",
    deps=[GOLD.key, FORECASTS.key],
    kinds={"duckdb", "parquet"},
    owners=OWNERS,
    automation_condition=downstream_condition(),
    freshness_policy=freshness_policy(),
    description=SALES_OVERALL.description,
)
def sales_overall(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    settings = project.settings
    folder = project.paths.plots / "series"
    with warehouse.connection() as con:
        built = build_overall_by_range(con, GOLD.name, FORECASTS.name, project.paths.engine / "sales_overall",
                                       folder, settings.compute.bucket_series, settings.plots.max_series)
    rows = warehouse.replace_from_parquet(SALES_OVERALL.name, built.pattern, order_by=SALES_OVERALL.order_by,
                                          then_remove=built.parts)
    by_origin = warehouse.query(f"select origin, count(*) as n from {SALES_OVERALL} group by origin "
                                "order by n desc, origin")
    plots = built.plots
    context.log.info(
        f"{SALES_OVERALL}: {rows} rows, built in {built.ranges} ranges of up to {settings.compute.bucket_series} "
        f"series; PNGs of the {len(plots.written)} series that sold the "
        f"most in {folder} (plots.max_series {settings.plots.max_series}): "
        f"{len(plots.drawn)} drawn, {len(plots.written) - len(plots.drawn)} unchanged; "
        f"{len(plots.removed)} stale PNGs removed; {plots.unplotted} series not plotted "
        "(`mlops-assets plot --product <id>` draws any series)"
    )
    return dg.MaterializeResult(metadata={
        **stored_table_metadata(
            warehouse, SALES_OVERALL,
            rows_by_origin=dg.MetadataValue.json(dict(zip(by_origin["origin"], map(int, by_origin["n"]), strict=True))),
            plots_folder=dg.MetadataValue.path(str(folder)),
            plotted_series=len(plots.written),
            redrawn_series=len(plots.drawn),
            unplotted_series=plots.unplotted,
            top_series=dg.MetadataValue.md(png_markdown(plot_top_series(built.top_rows), "top series by volume")),
        ),
        "dagster/column_schema": column_schema(built.columns, SALES_OVERALL.columns),
    })


serving_checks = [contract_check(SALES_OVERALL)]
