"""Metadata every table materialization carries: row count, column schema, a preview."""


from collections.abc import Callable

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from mlops_assets.defs.automation import contract_check_condition
from mlops_assets.defs.resources import ProjectResource, Warehouse
from mlops_assets.schemas import failure_summary

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


def pandera_check(
    *,
    asset: dg.AssetKey | str | list[str],
    name: str,
    table: str,
    schema: Callable[..., pa.DataFrameSchema],
    blocking: bool,
    description: str,
) -> dg.AssetChecksDefinition:
    """An asset check that validates the stored table lazily and lists every failure in its metadata.

    ``schema(warehouse, project)`` builds the schema at check time, so that it can depend on the settings
    (grain, frequency) and on other tables (ids that must exist).
    """

    @dg.asset_check(
        asset=asset,
        name=name,
        blocking=blocking,
        description=description,
        automation_condition=contract_check_condition(),
    )
    def _check(warehouse: Warehouse, project: ProjectResource) -> dg.AssetCheckResult:
        df = warehouse.read(table)
        try:
            schema(warehouse, project).validate(df, lazy=True)
        except pa.errors.SchemaErrors as err:
            count, examples = failure_summary(err)
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"{count} failure(s) of the {table} contract",
                metadata={
                    "failures": count,
                    "rows_checked": len(df),
                    "examples": dg.MetadataValue.md(examples.to_markdown(index=False)),
                },
            )
        return dg.AssetCheckResult(passed=True, metadata={"failures": 0, "rows_checked": len(df)})

    return _check
