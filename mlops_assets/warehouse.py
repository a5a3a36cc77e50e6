"""DuckDB reads and atomic writes, plus the Parquet snapshots that other processes read.

DuckDB lets one process hold the file for writing, and a reader in another process cannot open it while
a run writes. So every table written here is also published as ``exports/<schema>/<table>.parquet``,
written aside and renamed into place: a reader sees the previous snapshot or the new one, never half.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb
import pandas as pd

_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


def _checked(table: str) -> str:
    if not _NAME.match(table):
        raise ValueError(f"table name {table!r} must look like 'schema.table' (lower case)")
    return table


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = _checked(table).split(".")
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(found and found[0])


def read_table(con: duckdb.DuckDBPyConnection, table: str, *, missing_ok: bool = False) -> pd.DataFrame:
    """The whole table as a DataFrame; a missing table is an error unless ``missing_ok`` (then empty)."""
    if not table_exists(con, table):
        if missing_ok:
            return pd.DataFrame()
        raise LookupError(f"table {table} does not exist yet: materialize its asset first")
    return con.execute(f"select * from {_checked(table)}").df()


def write_tables(
    con: duckdb.DuckDBPyConnection,
    *,
    replace: dict[str, pd.DataFrame] | None = None,
    append: dict[str, pd.DataFrame] | None = None,
) -> None:
    """Replace some tables and append to others in ONE transaction: all of it lands, or none of it."""
    replace, append = replace or {}, append or {}
    for table in [*replace, *append]:
        con.execute(f"create schema if not exists {_checked(table).split('.')[0]}")
    con.execute("begin transaction")
    try:
        for i, (table, df) in enumerate([*replace.items(), *append.items()]):
            view = f"_incoming_{i}"
            con.register(view, _typed_strings(df))
            if table in replace or not table_exists(con, table):
                con.execute(f"create or replace table {table} as select * from {view}")
            else:
                con.execute(f"insert into {table} by name select * from {view}")
            con.unregister(view)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def _typed_strings(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns as pandas strings: DuckDB would type an empty or all-null object column as NULL."""
    objects = [c for c in df.columns if df[c].dtype == object]
    return df.astype(dict.fromkeys(objects, "string")) if objects else df


def replace_table(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame) -> None:
    """Swap in the new content in one transaction: readers of the database see the old or the new table."""
    write_tables(con, replace={table: df})


def snapshot_path(exports: Path, table: str) -> Path:
    schema, name = _checked(table).split(".")
    return exports / schema / f"{name}.parquet"


def publish_snapshot(exports: Path, table: str, df: pd.DataFrame) -> Path:
    """Write the Parquet snapshot aside and rename it into place (atomic on one filesystem)."""
    target = snapshot_path(exports, table)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, target)
    return target


def read_snapshot(exports: Path, table: str) -> pd.DataFrame:
    path = snapshot_path(exports, table)
    if not path.exists():
        raise LookupError(f"no snapshot of {table} at {path}: materialize its asset first")
    return pd.read_parquet(path)
