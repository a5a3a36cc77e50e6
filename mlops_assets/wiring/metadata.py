"""Metadata every table materialization carries: row count, column schema, a preview; and the last one's."""

import dagster as dg
import pandas as pd

from mlops_assets.catalog import Table
from mlops_assets.wiring.resources import Warehouse

OWNERS = ["team:forecasting"]


def latest_metadata(context: dg.AssetExecutionContext, key: dg.AssetKey) -> dict[str, dg.MetadataValue]:
    """Metadata of the asset's latest materialization (empty when never materialized)."""
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return {}
    return dict(event.asset_materialization.metadata)


def metadata_value(metadata: dict[str, dg.MetadataValue], name: str, default: object = None) -> object:
    found = metadata.get(name)
    return found.value if found is not None else default


def column_schema(df: pd.DataFrame, descriptions: dict[str, str] | None = None) -> dg.TableSchema:
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=str(name), type=str(dtype), description=descriptions.get(str(name)))
            for name, dtype in df.dtypes.items()
        ]
    )


# A preview cell is cut to this many characters, so that one long value cannot bloat the event log.
PREVIEW_CHARS = 200


def preview(df: pd.DataFrame, rows: int = 10) -> dg.MarkdownMetadataValue:
    if df.empty:
        return dg.MetadataValue.md("_empty table_")
    head = df.head(rows).copy()
    for column in head.select_dtypes(include=["object", "string"]).columns:
        head[column] = head[column].map(
            lambda v: v[:PREVIEW_CHARS] + "..." if isinstance(v, str) and len(v) > PREVIEW_CHARS else v)
    return dg.MetadataValue.md(head.to_markdown(index=False))


def table_metadata(
    df: pd.DataFrame, table: str, descriptions: dict[str, str] | None = None, **extra: object
) -> dict[str, object]:
    return {
        "dagster/row_count": len(df),
        "dagster/column_schema": column_schema(df, descriptions),
        "dagster/table_name": table,
        "preview": preview(df),
        **extra,
    }


def stored_table_metadata(warehouse: Warehouse, table: Table, columns: dict[str, str] | None = None,
                          **extra: object) -> dict[str, object]:
    """table_metadata of a stored catalog table from its first rows (in its order) and its count, without
    reading it whole; ``columns`` overrides the catalog's column descriptions."""
    order = f" order by {table.order_by}" if table.order_by else ""
    head = warehouse.query(f"select * from {table.name}{order} limit 10")
    rows = warehouse.query(f"select count(*) as n from {table.name}").iloc[0]["n"]
    descriptions = table.columns if columns is None else columns
    return {**table_metadata(head, table.name, descriptions, **extra), "dagster/row_count": int(rows)}


def previous_if_unchanged(context: dg.AssetExecutionContext, key: dg.AssetKey, fingerprint: str | None,
                          field: str = "input_fingerprint") -> dict[str, dg.MetadataValue] | None:
    """The metadata of the asset's last materialization when it was made from the same inputs (its recorded
    ``field`` equals ``fingerprint``): the asset can keep what it has. None when anything changed."""
    previous = latest_metadata(context, key)
    if fingerprint and metadata_value(previous, field) == fingerprint:
        return previous
    return None
