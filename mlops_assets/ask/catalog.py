"""The tables a question may read: names, columns, what they mean, and a few values of each text column.

Column descriptions come from the tables' contracts (schemas.py) where a contract describes the column, else
from the short texts below. Which columns a table has comes from its published snapshot, so a column the
settings add (another interval level, the customer columns at the product x customer grain) is there too.
``table_catalog`` is the one place that builds it: point it at another catalog and the rest follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from mlops_assets import schemas
from mlops_assets.warehouse import snapshot_path

TABLES: dict[str, str] = {
    "serving.sales_overall": "Actuals (origin 'Train') and forecasts (origin 'Predict') of every series, one row "
    "per series, period and origin, with the product's (and customer's) names and the forecast intervals.",
    "forecasting.forecasts": "The champion's forecast of every series for the coming periods, with intervals.",
    "forecasting.series_champions": "Per series: the model that won the backtest (the champion), its score, the "
    "runner-up and the seasonal naive baseline.",
    "forecasting.series_evaluation": "Backtest scores of every model on every series (mean over the windows).",
    "monitoring.forecast_accuracy": "Past forecasts scored against the actuals that came after them.",
    "gold.series_excluded": "Series that are not forecast, with the reason.",
    "raw.products": "Product master data: id, name, brand, category, launch and discontinuation dates.",
    "raw.customers": "Customer master data: id, name, channel, region.",
    "raw.sales_orders": "Order lines: one row per order and product, the quantity sold to a customer on a day.",
}

_SCHEMAS = {
    "serving.sales_overall": schemas.sales_overall_schema(),
    "forecasting.forecasts": schemas.forecasts_schema(),
    "forecasting.series_champions": schemas.SERIES_CHAMPIONS,
    "forecasting.series_evaluation": schemas.SERIES_EVALUATION,
    "monitoring.forecast_accuracy": schemas.forecast_accuracy_schema(),
    "gold.series_excluded": schemas.SERIES_EXCLUDED,
    "raw.products": schemas.PRODUCTS,
    "raw.customers": schemas.CUSTOMERS,
    "raw.sales_orders": schemas.sales_orders_schema(),
}

# Bookkeeping of the raw layer: where a row came from says nothing about sales.
_HIDDEN = {"source_file", "source_row", "ingested_at"}

_WORDS = {
    "unique_id": "id of the series (the product id, or product/customer at that grain)",
    "ds": "start date of the period",
    "origin": "'Train': an actual; 'Predict': a forecast",
    "sales": "units sold (Train) or forecast (Predict)",
    "y": "actual units sold",
    "y_hat": "forecast units",
    "imputed": "true where an actual was interpolated, not reported",
    "model": "forecasting model name",
    "model_version": "MLflow registered model version that made the forecast",
    "product_id": "product id", "product_name": "product name", "brand": "brand", "category": "category",
    "customer_id": "customer id", "customer_name": "customer name", "channel": "sales channel",
    "region": "customer region", "launch_date": "launch date", "discontinued_date": "discontinuation date",
    "runner_up": "second-best model in the backtest", "runner_up_smape": "the runner-up's SMAPE",
    "seasonal_naive_smape": "SMAPE of the seasonal naive baseline",
    "mae": "mean absolute error", "rmse": "root mean squared error", "bias": "mean error (forecast - actual)",
    "n_windows": "backtest windows scored", "reason_code": "why the series is not forecast (code)",
    "reason": "why the series is not forecast", "n_periods": "periods of history",
    "first_ds": "first period", "last_ds": "last period", "abs_error": "absolute error of the forecast",
    "train_end": "last period the model was trained on", "issued_at": "when the forecast was made",
    "horizon_step": "periods ahead the forecast was made", "order_id": "order id", "order_date": "order day",
    "quantity": "units ordered (negative: a return)", "unit_price": "price of one unit",
}

SAMPLE_VALUES = 6


@dataclass(frozen=True)
class TableInfo:
    name: str
    description: str
    columns: dict[str, str]  # column -> description
    values: dict[str, list[str]] = field(default_factory=dict)  # text column -> a few of its values
    path: Path | None = None  # the snapshot it reads


def _describe(table: str, column: str) -> str:
    schema_column = _SCHEMAS[table].columns.get(column)
    described = getattr(schema_column, "description", None)
    if described:
        return described
    if column.startswith(("lo_", "hi_")):
        side, level = column.split("_", 1)
        return f"{'lower' if side == 'lo' else 'upper'} bound of the {level}% prediction interval"
    return _WORDS.get(column, column.replace("_", " "))


def table_catalog(exports: Path, with_values: bool = False) -> dict[str, TableInfo]:
    """The catalog of the tables a question may read: those of TABLES whose snapshot is published; with
    ``with_values``, a few values of each text column (for a language model)."""
    catalog = {}
    with duckdb.connect() as con:
        for table, description in TABLES.items():
            path = snapshot_path(exports, table)
            if not path.exists():
                continue
            kinds = con.execute("select name, type from parquet_schema(?) where num_children is null",
                                [str(path)]).fetchall()
            columns = {name: _describe(table, name) for name, _ in kinds if name not in _HIDDEN}
            texts = [name for name, kind in kinds if kind == "BYTE_ARRAY" and name in columns]
            values = _sample_values(con, path, texts) if with_values else {}
            catalog[table] = TableInfo(table, description, columns, values, path)
    return catalog


def _sample_values(con: duckdb.DuckDBPyConnection, path: Path, columns: list[str]) -> dict[str, list[str]]:
    if not columns:
        return {}
    picks = ", ".join(f'list(distinct "{c}") filter ("{c}" is not null)[1:{SAMPLE_VALUES}]' for c in columns)
    # Sorted within the first rows: a few typical values, the same on every call, without reading every row.
    row = con.execute(f"select {picks} from (select * from read_parquet(?) limit 5000)", [str(path)]).fetchone()
    return {c: sorted(str(v) for v in (values or [])) for c, values in zip(columns, row, strict=True)}


def catalog_text(catalog: dict[str, TableInfo]) -> str:
    """The catalog as text for a language model: each table, its columns with what they mean, a few values."""
    lines = []
    for info in catalog.values():
        lines.append(f"TABLE {info.name}: {info.description}")
        for column, meaning in info.columns.items():
            shown = info.values.get(column)
            example = f" (e.g. {', '.join(repr(v) for v in shown[:4])})" if shown else ""
            lines.append(f"  - {column}: {meaning}{example}")
    return "\n".join(lines)
