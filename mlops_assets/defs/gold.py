"""Gold layer: one row per series and period, the table every forecast starts from."""


import dagster as dg

from mlops_assets import schemas
from mlops_assets.defs.automation import downstream_condition
from mlops_assets.defs.meta import OWNERS, pandera_check, table_metadata
from mlops_assets.defs.resources import ProjectResource, Warehouse
from mlops_assets.gold.aggregation import build_gold
from mlops_assets.serving.plots import plot_total_sales, png_markdown

GOLD = "gold.sales_data_for_forecast"
EXCLUDED = "gold.series_excluded"
CONTRACT_CHECK = "matches_contract"
RAW_INPUTS = ("sales_orders", "products", "customers", "promotions", "series")

GOLD_COLUMNS = {
    "unique_id": "Series id: the product id, or 'product_id/customer_id' at the product x customer grain.",
    "ds": "Start of the period (the Monday of the week by default).",
    "y": "Net units sold in the period (returns netted); 0 for a period without sales after the first sale.",
    "revenue": "Sum of quantity x unit price.",
    "avg_unit_price": "Revenue / units when units > 0.",
    "promo_share": "Share of the period's gross units sold under an active promotion (0 to 1).",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["gold", "sales_data_for_forecast"],
            description="Sales per series and period, gaps filled with zeros from each series' first sale, "
            "the incomplete last period left out. The input of every model.",
            deps=[dg.AssetKey(["raw", t]) for t in RAW_INPUTS],
            group_name="gold",
            kinds={"duckdb", "pandas"},
            owners=OWNERS,
            automation_condition=downstream_condition(),
        ),
        dg.AssetSpec(
            ["gold", "series_excluded"],
            description="Series that are not forecast and why (too short, all zero, discontinued, missing "
            "values, stale). Nothing leaves the forecast silently.",
            deps=[dg.AssetKey(["raw", t]) for t in RAW_INPUTS],
            group_name="gold",
            kinds={"duckdb", "pandas"},
            owners=OWNERS,
            automation_condition=downstream_condition(),
        ),
    ],
    can_subset=False,
)
def gold_tables(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    settings = project.settings
    tables = {t: warehouse.read(f"raw.{t}", missing_ok=True) for t in RAW_INPUTS}
    gold, excluded = build_gold(tables, settings)
    warehouse.write(replace={GOLD: gold, EXCLUDED: excluded})
    n_series = gold["unique_id"].nunique() if not gold.empty else 0
    context.log.info(
        f"{GOLD}: {len(gold)} rows, {n_series} series from {settings.source}; {len(excluded)} series excluded"
    )
    reasons = excluded["reason_code"].value_counts().to_dict() if not excluded.empty else {}
    yield dg.MaterializeResult(
        asset_key=["gold", "sales_data_for_forecast"],
        metadata=table_metadata(
            gold,
            GOLD,
            GOLD_COLUMNS,
            series=n_series,
            first_period=str(gold["ds"].min().date()) if not gold.empty else "",
            last_period=str(gold["ds"].max().date()) if not gold.empty else "",
            total_sales_plot=dg.MetadataValue.md(png_markdown(plot_total_sales(gold), "total sales per period"))
            if not gold.empty
            else "",
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["gold", "series_excluded"],
        metadata=table_metadata(excluded, EXCLUDED, by_reason=dg.MetadataValue.json(reasons)),
    )


gold_checks = [
    pandera_check(
        asset=["gold", "sales_data_for_forecast"],
        name=CONTRACT_CHECK,
        table=GOLD,
        schema=lambda _wh, project: schemas.gold_schema(project.settings.grain, project.settings.frequency),
        blocking=True,
        description="One row per series and period, no gaps, no missing or infinite sales, shares in [0, 1].",
    ),
    pandera_check(
        asset=["gold", "series_excluded"],
        name=CONTRACT_CHECK,
        table=EXCLUDED,
        schema=lambda _wh, _project: schemas.SERIES_EXCLUDED,
        blocking=True,
        description="Every excluded series has exactly one row with a known reason code and a reason.",
    ),
]
