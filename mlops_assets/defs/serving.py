"""Serving: the table and the plots that people and tools downstream read."""

import dagster as dg

from mlops_assets import schemas
from mlops_assets.defs.automation import downstream_condition
from mlops_assets.defs.meta import OWNERS, pandera_check, table_metadata
from mlops_assets.defs.resources import ProjectResource, Warehouse
from mlops_assets.serving.overall import build_sales_overall
from mlops_assets.serving.plots import plot_top_series, png_markdown, write_series_plots

SALES_OVERALL = "serving.sales_overall"

OVERALL_COLUMNS = {
    "origin": "'Train' for actual sales, 'Predict' for the champion's forecast.",
    "sales": "Units: actual net units (Train) or the point forecast (Predict).",
    "imputed": "True on a Train row whose value gold interpolated across a gap in a series file: not an actual.",
    "model_version": "Registered version of sales_forecast that made the forecast (Predict rows).",
}


@dg.asset(
    key=["serving", "sales_overall"],
    group_name="serving",
    deps=[["gold", "sales_data_for_forecast"], ["forecasting", "forecasts"]],
    kinds={"duckdb", "parquet"},
    owners=OWNERS,
    automation_condition=downstream_condition(),
    description="Actuals and forecasts side by side, one row per series, period and origin, with the series "
    "attributes and the forecast's intervals, model and version. Read it from other processes through "
    "exports/serving/sales_overall.parquet, replaced atomically.",
)
def sales_overall(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    overall = build_sales_overall(
        warehouse.read("gold.sales_data_for_forecast"), warehouse.read("forecasting.forecasts")
    )
    warehouse.replace(SALES_OVERALL, overall)
    folder = project.paths.plots / "series"
    series_plots = write_series_plots(overall, folder, project.settings.plots.max_series)
    context.log.info(
        f"{SALES_OVERALL}: {len(overall)} rows; PNGs of the {len(series_plots.written)} series that sold the "
        f"most in {folder} (plots.max_series {project.settings.plots.max_series}): "
        f"{len(series_plots.drawn)} drawn, {len(series_plots.written) - len(series_plots.drawn)} unchanged; "
        f"{len(series_plots.removed)} stale PNGs removed; {series_plots.unplotted} series not plotted "
        "(`mlops-assets plot --product <id>` draws any series)"
    )
    return dg.MaterializeResult(
        metadata=table_metadata(
            overall,
            SALES_OVERALL,
            OVERALL_COLUMNS,
            rows_by_origin=dg.MetadataValue.json(overall["origin"].value_counts().to_dict()),
            plots_folder=dg.MetadataValue.path(str(folder)),
            plotted_series=len(series_plots.written),
            redrawn_series=len(series_plots.drawn),
            unplotted_series=series_plots.unplotted,
            top_series=dg.MetadataValue.md(png_markdown(plot_top_series(overall), "top series by volume")),
        )
    )


serving_checks = [
    pandera_check(
        asset=["serving", "sales_overall"],
        name="matches_contract",
        table=SALES_OVERALL,
        schema=lambda _wh, project: schemas.sales_overall_schema(project.settings.interval_levels),
        blocking=False,
        description="One row per series, period and origin; every forecast row names its model version.",
    )
]
