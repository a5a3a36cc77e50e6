"""Gold layer: one row per series and period, the table every forecast starts from."""


import shutil

import dagster as dg

from mlops_assets import schemas
from mlops_assets.defs.automation import downstream_condition
from mlops_assets.defs.meta import OWNERS, pandera_check, table_metadata
from mlops_assets.gold.buckets import gold_by_bucket, regressors_by_bucket, stored_exclusion_summary
from mlops_assets.gold.exclusions import ExclusionSummary
from mlops_assets.resources import ProjectResource, Warehouse
from mlops_assets.serving.plots import plot_sales_totals, png_markdown
from mlops_assets.settings import Settings
from mlops_assets.warehouse import table_exists

GOLD = "gold.sales_data_for_forecast"
EXCLUDED = "gold.series_excluded"
REGRESSORS = "gold.regressors"
CONTRACT_CHECK = "matches_contract"
EXCLUDED_SHARE_CHECK = "excluded_share"
RAW_INPUTS = ("sales_orders", "products", "customers", "promotions", "series")

GOLD_COLUMNS = {
    "unique_id": "Series id: the product id, or 'product_id/customer_id' at the product x customer grain.",
    "ds": "Start of the period (the Monday of the week by default).",
    "y": "Net units sold in the period (returns netted), or a series file's value; a period without one "
    "is 0 or interpolated, as gold.missing_periods says.",
    "revenue": "Sum of quantity x unit price.",
    "avg_unit_price": "Revenue / units when units > 0.",
    "promo_share": "Share of the period's gross units sold under an active promotion (0 to 1).",
    "imputed": "True where a series file had no value for the period and y was interpolated between its "
    "neighbours (gold.missing_periods: not_reported); not an actual.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["gold", "sales_data_for_forecast"],
            description="Sales per series and period, from each series' first sale: periods without order "
            "lines are zero sales; in series files a missing value is zero or interpolated (flagged "
            "`imputed`) as gold.missing_periods says. The incomplete last period is left out. The input of "
            "every model.",
            deps=[dg.AssetKey(["raw", t]) for t in RAW_INPUTS],
            group_name="gold",
            kinds={"duckdb", "pandas"},
            owners=OWNERS,
            automation_condition=downstream_condition(),
        ),
        dg.AssetSpec(
            ["gold", "series_excluded"],
            description="Series that are not forecast and why (too short, all zero, discontinued, no value "
            "at all, stale, dates that do not fit the frequency). Nothing leaves the forecast silently: "
            "a large share excluded warns in the log and in the excluded_share check.",
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
    folder = project.paths.engine / "gold"
    parts = gold_by_bucket(warehouse.connection, settings, folder, context.log.info)
    warehouse.replace_many_from_parquet({GOLD: (parts.patterns["gold"], "unique_id, ds"),
                                         EXCLUDED: (parts.patterns["excluded"], "unique_id")})
    shutil.rmtree(folder, ignore_errors=True)
    stats = warehouse.query(f"select count(*) as rows, count(distinct unique_id) as series, "
                            f"count_if(imputed) as imputed, min(ds) as first, max(ds) as last from {GOLD}").iloc[0]
    n_series, imputed = int(stats["series"]), int(stats["imputed"])
    summary = _exclusion_summary(warehouse, settings.gold.warn_excluded_share)
    context.log.info(
        f"{GOLD}: {stats['rows']} rows, {n_series} series from {settings.source}, {imputed} missing values "
        f"interpolated" + (f" ({parts.buckets} buckets of series)" if parts.buckets > 1 else "")
    )
    if summary.too_many:
        context.log.warning(f"{EXCLUDED}: {summary.message()}")
    else:
        context.log.info(f"{EXCLUDED}: {summary.message()}")
    totals = warehouse.query(f"select ds, sum(y) as y from {GOLD} group by ds order by ds")
    yield dg.MaterializeResult(
        asset_key=["gold", "sales_data_for_forecast"],
        metadata={
            **_stored_metadata(warehouse, GOLD, "unique_id, ds", GOLD_COLUMNS),
            "series": n_series,
            "imputed_values": imputed,
            "first_period": str(stats["first"].date()) if n_series else "",
            "last_period": str(stats["last"].date()) if n_series else "",
            "total_sales_plot": dg.MetadataValue.md(png_markdown(
                plot_sales_totals(totals.set_index("ds")["y"], n_series), "total sales per period"))
            if n_series else "",
        },
    )
    yield dg.MaterializeResult(
        asset_key=["gold", "series_excluded"],
        metadata={
            **_stored_metadata(warehouse, EXCLUDED, "unique_id"),
            "by_reason": dg.MetadataValue.json(summary.by_reason),
            "excluded_share": round(summary.share, 4),
            "summary": summary.message(),
        },
    )


def _stored_metadata(warehouse: Warehouse, table: str, order_by: str,
                     descriptions: dict[str, str] | None = None) -> dict[str, object]:
    """table_metadata of a stored table from its first rows and its count, without reading it whole."""
    head = warehouse.query(f"select * from {table} order by {order_by} limit 10")
    rows = warehouse.query(f"select count(*) as n from {table}").iloc[0]["n"]
    return {**table_metadata(head, table, descriptions), "dagster/row_count": int(rows)}


def _exclusion_summary(warehouse: Warehouse, threshold: float) -> ExclusionSummary:
    with warehouse.connection() as con:
        return stored_exclusion_summary(con, GOLD, EXCLUDED, threshold)


@dg.asset_check(
    asset=["gold", "series_excluded"],
    name=EXCLUDED_SHARE_CHECK,
    blocking=False,
    description="Warns when more than gold.warn_excluded_share of the series are kept out of forecasting: "
    "the run still succeeds, but a forecast of few series should not pass quietly.",
)
def excluded_share_check(warehouse: Warehouse, project: ProjectResource) -> dg.AssetCheckResult:
    summary = _exclusion_summary(warehouse, project.settings.gold.warn_excluded_share)
    # The first three series of each reason, in the table's order (by unique_id).
    examples = warehouse.query(f"select unique_id, reason_code, reason from {EXCLUDED} qualify row_number() "
                               "over (partition by reason_code order by unique_id) <= 3 order by unique_id")
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


REGRESSOR_COLUMNS = {
    "is_future": "True for the horizon after the series' last period: values the business planned.",
    "promo_depth": "Mean over the period's days of the deepest promotion discount on the product, percent.",
    "holiday_days": "Public holidays in the period (settings.regressors.country).",
}


def _regressor_columns(settings: Settings) -> dict[str, str]:
    declared = {name: f"Column {name} of the series files, {kind}: "
                + ("future values from the rows after each series' last value (0 where none is given)."
                   if kind == "planned" else "after each cutoff, and in the forecast, its last known value.")
                for name, kind in settings.regressors.series_columns.items()}
    return {**REGRESSOR_COLUMNS, **declared}


@dg.asset(
    key=["gold", "regressors"],
    group_name="gold",
    deps=[["gold", "sales_data_for_forecast"], ["raw", "promotions"], ["raw", "series"]],
    kinds={"duckdb", "pandas"},
    owners=OWNERS,
    automation_condition=downstream_condition(),
    description="What the business knows about each series' periods, past and the next horizon: planned "
    "promotions' discount depth, public holidays and a series file's own declared columns "
    "(regressors.series_columns). The global model (LightGBM) uses them.",
)
def regressors(context: dg.AssetExecutionContext, project: ProjectResource, warehouse: Warehouse):
    settings = project.settings
    declared = settings.regressors.series_columns
    folder = project.paths.engine / "regressors"
    parts = regressors_by_bucket(warehouse.connection, GOLD, settings, folder)
    warehouse.replace_from_parquet(REGRESSORS, parts.patterns["regressors"], order_by="unique_id, ds")
    shutil.rmtree(folder, ignore_errors=True)
    counts = warehouse.query(f"select count(*) as n, count_if(promo_depth > 0) as promoted, "
                             f"count_if(is_future and promo_depth > 0) as planned from {REGRESSORS}").iloc[0]
    rows, planned = int(counts["n"]), int(counts["planned"])
    context.log.info(f"{REGRESSORS}: {rows} rows; {planned} future periods under a planned promotion"
                     + (f"; series file columns {dict(declared)}" if declared else ""))
    # A misspelt declaration would otherwise be a column of zeros that nobody notices.
    empty = _columns_without_values(warehouse, list(declared))
    if empty:
        context.log.warning(f"regressors.series_columns {empty}: no value in any row of raw.series, so 0 "
                            "throughout; is the file's column named otherwise? Map it in column_mapping.series")
    return dg.MaterializeResult(metadata={
        **_stored_metadata(warehouse, REGRESSORS, "unique_id, ds", _regressor_columns(settings)),
        "promoted_share": int(counts["promoted"]) / rows if rows else 0.0,
        "planned_promotion_periods": planned,
        "holiday_country": settings.regressors.country or "",
        "series_columns": dg.MetadataValue.json(dict(declared)),
        "series_columns_without_values": dg.MetadataValue.json(empty),
        "used_by_lightgbm": dg.MetadataValue.json(settings.regressors.use),
    })


def _columns_without_values(warehouse: Warehouse, declared: list[str]) -> list[str]:
    """The declared columns that raw.series lacks, or holds no value in (all of them without raw.series)."""
    if not declared:
        return []
    with warehouse.connection() as con:
        if not table_exists(con, "raw.series"):
            return declared
        present = {c for (c,) in con.execute("select column_name from (describe raw.series)").fetchall()}
        return [c for c in declared
                if c not in present or not con.execute(f'select count("{c}") from raw.series').fetchone()[0]]


gold_checks = [
    pandera_check(
        asset=["gold", "regressors"],
        name=CONTRACT_CHECK,
        table=REGRESSORS,
        schema=lambda _wh, project: schemas.regressors_schema(project.settings.regressors.series_columns),
        blocking=True,
        description="One row per series and period, past and future; depths in percent, holiday counts.",
    ),
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
    excluded_share_check,
]
