"""Metadata every table materialization carries: row count, column schema, a preview."""


import math
from collections.abc import Callable, Iterator

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from mlops_assets.defs.automation import contract_check_condition
from mlops_assets.resources import ProjectResource, Warehouse
from mlops_assets.schemas import failure_summary
from mlops_assets.schemas_sql import validate_in_duckdb

OWNERS = ["team:forecasting"]
# Rows a contract check holds at a time: a larger table is validated bucket by bucket (whole series each).
CHECK_CHUNK_ROWS = 500_000
# From this many rows a contract is evaluated by DuckDB in SQL (schemas_sql.py): reading a table into pandas
# and validating it there cost twice its asset's time at 1.5 M rows. Smaller tables keep pandera's own reports.
CHECK_SQL_ROWS = 100_000


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


def table_chunks(warehouse: Warehouse, table: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The whole table, in buckets of whole series (a DuckDB hash of unique_id) of about ``chunk_rows`` rows.

    Every row is in exactly one bucket, so nothing is sampled; every constraint keyed by series (unique rows,
    no gaps) holds in the table exactly when it holds in each bucket. Tables without unique_id come whole.
    """
    with warehouse.connection() as con:
        rows = con.execute(f"select count(*) from {table}").fetchone()[0]
        columns = [c[0] for c in con.execute(f"select * from {table} limit 0").description]
    buckets = math.ceil(rows / chunk_rows) if "unique_id" in columns else 1
    if buckets <= 1:
        yield warehouse.read(table)
        return
    for b in range(buckets):
        yield warehouse.query(f"select * from {table} where hash(unique_id::varchar) % {buckets} = {b}")


def pandera_check(
    *,
    asset: dg.AssetKey | str | list[str],
    name: str,
    table: str,
    schema: Callable[..., pa.DataFrameSchema],
    blocking: bool,
    description: str,
    chunk_rows: int = CHECK_CHUNK_ROWS,
    sql_rows: int = CHECK_SQL_ROWS,
) -> dg.AssetChecksDefinition:
    """An asset check that validates every row of the stored table lazily and lists the failures in its metadata.

    ``schema(warehouse, project)`` builds the schema at check time, so that it can depend on the settings
    (grain, frequency) and on other tables (ids that must exist). Large tables are validated bucket by bucket
    (table_chunks), so the check's memory follows the bucket, not the table; from ``sql_rows`` rows, the same
    schema is evaluated by DuckDB on the stored table (schemas_sql.validate_in_duckdb), every row, in SQL.
    """

    @dg.asset_check(
        asset=asset,
        name=name,
        blocking=blocking,
        description=description,
        automation_condition=contract_check_condition(),
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: Warehouse, project: ProjectResource):
        contract = schema(warehouse, project)
        with warehouse.connection() as con:
            rows = con.execute(f"select count(*) from {table}").fetchall()[0][0]
            if rows >= sql_rows:
                count, shown = validate_in_duckdb(con, table, contract)
        if rows >= sql_rows:
            examples = [shown]
            context.log.info(f"{table}: {rows:,} rows validated in DuckDB, {count} failing row(s)")
        else:
            count, examples, buckets = _validate_in_pandas(warehouse, table, contract, chunk_rows)
            if buckets > 1:
                context.log.info(f"{table}: {rows:,} rows validated in {buckets} buckets, {count} failure(s)")
        if count:
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"{count} failure(s) of the {table} contract",
                metadata={
                    "failures": count,
                    "rows_checked": rows,
                    "validated_in": "duckdb" if rows >= sql_rows else "pandas",
                    "examples": dg.MetadataValue.md(pd.concat(examples).head(20).to_markdown(index=False)),
                },
            )
        return dg.AssetCheckResult(passed=True, metadata={
            "failures": 0, "rows_checked": rows, "validated_in": "duckdb" if rows >= sql_rows else "pandas"})

    return _check


def _validate_in_pandas(warehouse: Warehouse, table: str, contract: pa.DataFrameSchema,
                        chunk_rows: int) -> tuple[int, list[pd.DataFrame], int]:
    count, examples, buckets = 0, [], 0
    for chunk in table_chunks(warehouse, table, chunk_rows):
        buckets += 1
        try:
            contract.validate(chunk, lazy=True)
        except pa.errors.SchemaErrors as err:
            found, shown = failure_summary(err)
            count += found
            examples.append(shown)
    return count, examples, buckets
