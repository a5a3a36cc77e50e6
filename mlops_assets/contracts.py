"""A stored table validated against its contract, every row: in DuckDB for a large table, else in pandas.

From ``SQL_ROWS`` rows a contract is evaluated by DuckDB in SQL (schemas_sql.py): reading a table into pandas and
validating it there cost twice its asset's time at 1.5 M rows. Smaller tables keep pandera's own reports, a
bucket of whole series at a time, so the memory follows the bucket, not the table.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

from mlops_assets.buckets import in_bucket
from mlops_assets.schemas import failure_summary
from mlops_assets.schemas_sql import validate_in_duckdb
from mlops_assets.warehouse import Connect, read_table

# Rows a pandas validation holds at a time: a larger table is validated bucket by bucket (whole series each).
CHUNK_ROWS = 500_000
SQL_ROWS = 100_000


@dataclass(frozen=True)
class Validation:
    table: str
    rows: int
    failures: int
    # The first failures, as rows of a table that reads well in metadata (empty when none failed).
    examples: pd.DataFrame
    validated_in: str
    buckets: int = 1

    @property
    def passed(self) -> bool:
        return self.failures == 0


def table_chunks(connect: Connect, table: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The whole table, in buckets of whole series (a DuckDB hash of unique_id) of about ``chunk_rows`` rows.

    Every row is in exactly one bucket, so nothing is sampled; every constraint keyed by series (unique rows,
    no gaps) holds in the table exactly when it holds in each bucket. Tables without unique_id come whole.
    """
    with connect() as con:
        rows = con.execute(f"select count(*) from {table}").fetchone()[0]
        columns = [c[0] for c in con.execute(f"select * from {table} limit 0").description]
    buckets = math.ceil(rows / chunk_rows) if "unique_id" in columns else 1
    if buckets <= 1:
        with connect() as con:
            yield read_table(con, table)
        return
    for b in range(buckets):
        with connect() as con:
            yield con.execute(f"select * from {table} where {in_bucket('unique_id', buckets, b)}").df()


def validate_in_pandas(connect: Connect, table: str, contract: pa.DataFrameSchema,
                       chunk_rows: int = CHUNK_ROWS) -> tuple[int, list[pd.DataFrame], int]:
    """(failures, examples of each bucket, buckets) of the table validated a bucket of series at a time."""
    count, examples, buckets = 0, [], 0
    for chunk in table_chunks(connect, table, chunk_rows):
        buckets += 1
        try:
            contract.validate(chunk, lazy=True)
        except pa.errors.SchemaErrors as err:
            found, shown = failure_summary(err)
            count += found
            examples.append(shown)
    return count, examples, buckets


def validate_stored(connect: Connect, table: str, contract: pa.DataFrameSchema, *, chunk_rows: int = CHUNK_ROWS,
                    sql_rows: int = SQL_ROWS) -> Validation:
    with connect() as con:
        rows = con.execute(f"select count(*) from {table}").fetchall()[0][0]
        if rows >= sql_rows:
            count, shown = validate_in_duckdb(con, table, contract)
            return Validation(table, rows, count, shown.head(20), "duckdb")
    count, examples, buckets = validate_in_pandas(connect, table, contract, chunk_rows)
    shown = pd.concat(examples).head(20) if examples else pd.DataFrame()
    return Validation(table, rows, count, shown, "pandas", buckets)
