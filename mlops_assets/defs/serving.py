"""Serving: the table and the plots that people and tools downstream read."""

import shutil

import dagster as dg
import pandas as pd

from mlops_assets import schemas
from mlops_assets.defs.automation import downstream_condition
from mlops_assets.defs.meta import OWNERS, column_schema, pandera_check, table_metadata
from mlops_assets.resources import ProjectResource, Warehouse
from mlops_assets.serving.overall import build_sales_overall, default_attributes, unknown_series_error
from mlops_assets.serving.plots import SeriesPlotWriter, plot_top_series, png_markdown, rank_by_volume
from mlops_assets.warehouse import require_table, series_bucket, series_ranges, write_part

SALES_OVERALL = "serving.sales_overall"
GOLD = "gold.sales_data_for_forecast"
FORECASTS = "forecasting.forecasts"
ORDER = "unique_id, ds, origin"
# The series the metadata's picture shows (plot_top_series' default).
TOP_SERIES = 4

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
    settings = project.settings
    folder = project.paths.plots / "series"
    parts = project.paths.engine / "sales_overall"
    shutil.rmtree(parts, ignore_errors=True)
    with warehouse.connection() as con:
        for table in (GOLD, FORECASTS):
            require_table(con, table)
        attributes = default_attributes([c[0] for c in con.execute(f"select * from {GOLD} limit 0").description])
        unknown = [uid for (uid,) in con.execute(
            f"select distinct unique_id::varchar from {FORECASTS} where unique_id::varchar not in "
            f"(select unique_id::varchar from {GOLD}) order by 1").fetchall()]
        if unknown:
            raise unknown_series_error(unknown)
        # Units sold per series, summed by DuckDB: it ranks the series to plot before any bucket is read.
        volume = con.execute(f"select unique_id::varchar as unique_id, coalesce(sum(y), 0) as volume from {GOLD} "
                             "group by 1").df().set_index("unique_id")["volume"]
        ranked = rank_by_volume(volume)
        top, schema = ranked[:TOP_SERIES], None
        top_rows = []
        ranges = series_ranges(con, GOLD, settings.compute.bucket_series) or [None]
        with SeriesPlotWriter(folder, ranked, volume.index, settings.plots.max_series) as writer:
            for k, bounds in enumerate(ranges):
                gold, forecasts = series_bucket(con, GOLD, bounds), series_bucket(con, FORECASTS, bounds)
                bucket = build_sales_overall(gold, forecasts, attributes)
                write_part(bucket, parts / f"bucket-{k:05d}.parquet")
                writer.draw(bucket)
                top_rows.append(bucket[bucket["unique_id"].isin(top)])
                schema = column_schema(bucket, OVERALL_COLUMNS) if schema is None else schema
            series_plots = writer.finish()
    rows = warehouse.replace_from_parquet(SALES_OVERALL, str(parts / "*.parquet"), order_by=ORDER)
    shutil.rmtree(parts, ignore_errors=True)
    head = warehouse.query(f"select * from {SALES_OVERALL} order by {ORDER} limit 10")
    by_origin = warehouse.query(f"select origin, count(*) as n from {SALES_OVERALL} group by origin "
                                "order by n desc, origin")
    context.log.info(
        f"{SALES_OVERALL}: {rows} rows, built in {len(ranges)} buckets of up to {settings.compute.bucket_series} "
        f"series; PNGs of the {len(series_plots.written)} series that sold the "
        f"most in {folder} (plots.max_series {settings.plots.max_series}): "
        f"{len(series_plots.drawn)} drawn, {len(series_plots.written) - len(series_plots.drawn)} unchanged; "
        f"{len(series_plots.removed)} stale PNGs removed; {series_plots.unplotted} series not plotted "
        "(`mlops-assets plot --product <id>` draws any series)"
    )
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                head,
                SALES_OVERALL,
                OVERALL_COLUMNS,
                rows_by_origin=dg.MetadataValue.json(dict(zip(by_origin["origin"], map(int, by_origin["n"]),
                                                              strict=True))),
                plots_folder=dg.MetadataValue.path(str(folder)),
                plotted_series=len(series_plots.written),
                redrawn_series=len(series_plots.drawn),
                unplotted_series=series_plots.unplotted,
                top_series=dg.MetadataValue.md(png_markdown(plot_top_series(pd.concat(top_rows)),
                                                            "top series by volume")),
            ),
            "dagster/row_count": rows,
            "dagster/column_schema": schema,
        }
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
