"""DuckDB reads and atomic writes, plus the Parquet snapshots that other processes read.

DuckDB lets one process hold the file for writing, and a reader in another process cannot open it while
a run writes. So every table written here is also published as ``exports/<schema>/<table>.parquet``,
written aside and renamed into place: a reader sees the previous snapshot or the new one, never half.

The snapshot is published after the DuckDB commit, so a process killed between the two (or a publish that
fails) leaves it behind the warehouse. Each write therefore records a write id per table in the same
transaction (``mlops_meta.snapshot_versions``) and stamps it into the snapshot's Parquet metadata;
``reconcile_snapshots``, run at the start of every run, republishes any snapshot whose stamp differs.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# How work functions reach the warehouse: a call that opens a DuckDB connection for a `with` block
# (Warehouse.connection), so the file is open only while they read or write.
Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
VERSIONS = "mlops_meta.snapshot_versions"
WRITE_ID_KEY = b"mlops_write_id"
_HELD_BY = re.compile(r"Conflicting lock is held in (.+?) \(PID (\d+)\)")


def sql_string(value: str | os.PathLike) -> str:
    """A string literal for DuckDB SQL (a path in COPY ... TO, ATTACH, read_parquet), quotes doubled.

    Where DuckDB takes a parameter (``read_parquet(?)``), pass the value as one instead; COPY and ATTACH
    do not take parameters. A data directory named ``l'été 2026`` must work like any other.
    """
    return "'" + str(value).replace("'", "''") + "'"


class WarehouseBusy(RuntimeError):
    """Another process kept the DuckDB file open for longer than a run would wait."""


def connect(
    path: str | os.PathLike,
    *,
    wait_seconds: float,
    on_wait: Callable[[str], None] | None = None,
    memory_mb: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """A read-write connection, waiting up to ``wait_seconds`` while another process holds the file.

    A reader that opened the file (even read-only) keeps every writer out until it closes; the wait is
    bounded by time, not by a number of retries, and its end names that process. ``memory_mb`` caps
    DuckDB's buffers (it spills beyond it); without it DuckDB may take 80% of the machine's memory.
    """
    deadline = time.monotonic() + wait_seconds
    announced = False
    while True:
        try:
            con = duckdb.connect(str(path))
            if memory_mb is not None:
                # A SET, not connect(config=...): DuckDB refuses a second connection with another config to a
                # database this process already has open, and the limit is the database's, not the connection's.
                con.execute(f"set memory_limit = '{int(memory_mb)}MiB'")
            return con
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            found = _HELD_BY.search(str(error))
            who = f"process {found.group(2)} ({found.group(1)})" if found else "another process"
            if time.monotonic() >= deadline:
                raise WarehouseBusy(
                    f"the warehouse {path} is held open by {who}; this run waited {wait_seconds:g} s (setting "
                    "locks.warehouse_wait_seconds) for it to close. Close that connection and run again. "
                    "To read while runs may write, read the Parquet snapshots in exports/ (never locked), "
                    "or open the warehouse read-only only when no run is going and close it promptly."
                ) from error
            if not announced and on_wait is not None:
                on_wait(f"the warehouse {path} is held open by {who}: waiting up to {wait_seconds:g} s")
                announced = True
            time.sleep(min(0.5, max(deadline - time.monotonic(), 0.0)))


def connector(
    path: str | os.PathLike, *, wait_seconds: float = 0.0, on_wait: Callable[[str], None] | None = None,
    memory_mb: int | None = None,
) -> Connect:
    """The Connect of the DuckDB file at ``path``: each call opens it (as ``connect``) for one ``with`` block,
    which closes it."""
    return lambda: connect(path, wait_seconds=wait_seconds, on_wait=on_wait, memory_mb=memory_mb)


def checked_name(table: str) -> str:
    """``table`` when it is a plain 'schema.table' name: the only kind of name pasted into SQL here."""
    if not _NAME.match(table):
        raise ValueError(f"table name {table!r} must look like 'schema.table' (lower case)")
    return table


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = checked_name(table).split(".")
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(found and found[0])


def read_table(con: duckdb.DuckDBPyConnection, table: str, *, missing_ok: bool = False) -> pd.DataFrame:
    """The whole table as a DataFrame; a missing table is an error unless ``missing_ok`` (then empty)."""
    if missing_ok and not table_exists(con, table):
        return pd.DataFrame()
    require_table(con, table)
    return con.execute(f"select * from {checked_name(table)}").df()


def row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """The table's rows; 0 when it does not exist yet."""
    if not table_exists(con, table):
        return 0
    return int(con.execute(f"select count(*) from {checked_name(table)}").fetchone()[0])


def table_fingerprint(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """A digest of a table's columns and of every row, computed by DuckDB (row order does not count)."""
    rows, hashed = con.execute(f"select count(*), coalesce(sum(hash(t)), 0)::varchar from {table} t").fetchone()
    columns = con.execute(f"select column_name, column_type from (describe {table})").fetchall()
    return hashlib.sha256(f"{columns}|{rows}|{hashed}".encode()).hexdigest()[:16]


def require_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Raise LookupError, saying what to do, when the table does not exist yet."""
    if not table_exists(con, table):
        raise LookupError(f"table {table} does not exist yet: materialize its asset first")


def write_tables(
    con: duckdb.DuckDBPyConnection,
    *,
    replace: dict[str, pd.DataFrame] | None = None,
    append: dict[str, pd.DataFrame] | None = None,
) -> str:
    """Replace some tables and append to others in ONE transaction: all of it lands, or none of it.

    Returns the write id recorded for every table touched (see ``reconcile_snapshots``).
    """
    replace, append = replace or {}, append or {}
    with transaction(con, [*replace, *append]) as write_id:
        write_frames(con, replace=replace, append=append)
    return write_id


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, tables: list[str]) -> Iterator[str]:
    """One transaction that writes ``tables`` (in SQL or from frames); yields the write id it records for them.

    An error inside rolls all of it back: the tables keep their previous content whole.
    """
    for table in tables:
        con.execute(f"create schema if not exists {checked_name(table).split('.')[0]}")
    _create_versions(con)
    write_id = uuid.uuid4().hex
    con.execute("begin transaction")
    try:
        yield write_id
        for table in tables:
            _record_version(con, table, write_id)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def write_frames(
    con: duckdb.DuckDBPyConnection,
    *,
    replace: dict[str, pd.DataFrame] | None = None,
    append: dict[str, pd.DataFrame] | None = None,
) -> None:
    """Replace or append frames inside the caller's ``transaction``."""
    replace, append = replace or {}, append or {}
    for i, (table, df) in enumerate([*replace.items(), *append.items()]):
        view = f"_incoming_{i}"
        con.register(view, _typed_strings(df))
        if table in replace or not table_exists(con, table):
            con.execute(f"create or replace table {table} as select * from {view}")
        else:
            add_new_columns(con, table, view)
            con.execute(f"insert into {table} by name select * from {view}")
        con.unregister(view)


def add_new_columns(con: duckdb.DuckDBPyConnection, table: str, view: str) -> None:
    """A history table gains the columns a newer version appends; its older rows hold NULL there."""
    schema, name = table.split(".")
    have = {c for (c,) in con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ?", [schema, name]
    ).fetchall()}
    for column, kind in con.execute(f"select column_name, column_type from (describe {view})").fetchall():
        if column not in have:
            con.execute(f'alter table {table} add column "{column}" {kind}')


def _create_versions(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists mlops_meta")
    con.execute(f"create table if not exists {VERSIONS} (table_name varchar primary key, write_id varchar)")


def _record_version(con: duckdb.DuckDBPyConnection, table: str, write_id: str) -> None:
    con.execute(f"insert or replace into {VERSIONS} values (?, ?)", [table, write_id])


def _typed_strings(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns as pandas strings: DuckDB would type an empty or all-null object column as NULL."""
    objects = [c for c in df.columns if df[c].dtype == object]
    return df.astype(dict.fromkeys(objects, "string")) if objects else df


def replace_table(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame) -> None:
    """Swap in the new content in one transaction: readers of the database see the old or the new table."""
    write_tables(con, replace={table: df})


def replace_from_parquet(con: duckdb.DuckDBPyConnection, table: str, pattern: str, order_by: str) -> tuple[int, str]:
    """Replace a table with Parquet files' rows, sorted, in one transaction, without pandas.

    DuckDB streams and spills the files itself, so a table larger than this process' memory can be loaded.
    Returns the rows and the write id (see ``write_tables``).
    """
    rows, write_id = replace_tables_from_parquet(con, {table: (pattern, order_by)})
    return rows[table], write_id


def replace_tables_from_parquet(
    con: duckdb.DuckDBPyConnection, tables: dict[str, tuple[str, str]]
) -> tuple[dict[str, int], str]:
    """``replace_from_parquet`` for several tables (table -> (pattern, order_by)) in ONE transaction: tables
    that belong together (gold and its excluded series) change together or not at all."""
    rows = {}
    with transaction(con, list(tables)) as write_id:
        for table, (pattern, order_by) in tables.items():
            con.execute(
                f"create or replace table {table} as select * from read_parquet(?) order by {order_by}", [pattern]
            )
            rows[table] = int(con.execute(f"select count(*) from {table}").fetchone()[0])
    return rows, write_id


def write_part(df: pd.DataFrame, path: Path) -> None:
    """A Parquet part with the column types ``write_tables`` would give the frame (DuckDB writes it), written
    aside and renamed: a table loaded from parts is typed as one written whole, and a part that exists is
    whole, so a rerun can trust it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with duckdb.connect() as con:
        con.register("part", _typed_strings(df))
        con.execute(f"copy part to {sql_string(tmp)} (format parquet)")
    os.replace(tmp, path)


def publish_snapshot_from_table(con: duckdb.DuckDBPyConnection, exports: Path, table: str, write_id: str) -> Path:
    """publish_snapshot written by DuckDB from the stored table, for tables too large for a DataFrame."""
    target = snapshot_path(exports, table)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    stamp = f"{{{WRITE_ID_KEY.decode()}: '{uuid.UUID(write_id).hex}'}}"
    con.execute(f"copy {checked_name(table)} to {sql_string(tmp)} (format parquet, kv_metadata {stamp})")
    os.replace(tmp, target)
    return target


def snapshot_path(exports: Path, table: str) -> Path:
    schema, name = checked_name(table).split(".")
    return exports / schema / f"{name}.parquet"


def publish_snapshot(exports: Path, table: str, df: pd.DataFrame, write_id: str = "") -> Path:
    """Write the Parquet snapshot aside and rename it into place (atomic on one filesystem).

    ``write_id`` (from ``write_tables``) goes into the file's metadata: which warehouse write it mirrors.
    """
    target = snapshot_path(exports, table)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    arrow = pa.Table.from_pandas(df, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), WRITE_ID_KEY: write_id.encode()})
    pq.write_table(arrow, tmp)
    os.replace(tmp, target)
    return target


def snapshot_write_id(path: Path) -> str | None:
    """The warehouse write a snapshot mirrors; None when it is missing, unreadable or unstamped."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    found = metadata.get(WRITE_ID_KEY)
    return found.decode() if found else None


def reconcile_snapshots(con: duckdb.DuckDBPyConnection, exports: Path) -> list[str]:
    """Make exports/ mirror the warehouse; returns what was repaired, sorted (empty when all was in step).

    Republishes every snapshot that is missing or stamped with another write than the warehouse's last
    one, removes snapshots of tables the warehouse no longer has and leftovers of killed publishes. Call it
    only while no other run writes (the run lock), since it overwrites their snapshots.
    """
    _create_versions(con)
    versions = dict(con.execute(f"select table_name, write_id from {VERSIONS}").fetchall())
    rows = con.execute(
        "select table_schema || '.' || table_name from information_schema.tables "
        "where table_schema <> 'mlops_meta' and table_type = 'BASE TABLE'"
    ).fetchall()
    tables = sorted(t for (t,) in rows if _NAME.match(t))
    repaired = []
    for table in tables:
        write_id = versions.get(table)
        if write_id is None:  # written before write ids were kept
            write_id = uuid.uuid4().hex
            _record_version(con, table, write_id)
        if snapshot_write_id(snapshot_path(exports, table)) != write_id:
            publish_snapshot(exports, table, read_table(con, table), write_id)
            repaired.append(table)
    for path in sorted(exports.glob("*/*.parquet")):
        if f"{path.parent.name}.{path.stem}" not in tables:
            path.unlink()
            repaired.append(f"{path.parent.name}.{path.stem} (removed: not in the warehouse)")
    for leftover in sorted(exports.glob("*/.*.tmp")):
        leftover.unlink()
    return repaired


def read_snapshot(exports: Path, table: str) -> pd.DataFrame:
    path = snapshot_path(exports, table)
    if not path.exists():
        raise LookupError(f"no snapshot of {table} at {path}: materialize its asset first")
    return pd.read_parquet(path)


def append_from_query(con: duckdb.DuckDBPyConnection, table: str, sql: str, params: list | None = None) -> str:
    """Append a query's rows to a history table (created when missing) in one transaction, without pandas;
    returns the write id (see ``write_tables``)."""
    with transaction(con, [table]) as write_id:
        if table_exists(con, table):
            con.execute(f"create or replace temporary table _incoming_append as {sql}", params or [])
            add_new_columns(con, table, "_incoming_append")
            con.execute(f"insert into {table} by name select * from _incoming_append")
            con.execute("drop table _incoming_append")
        else:
            con.execute(f"create table {table} as {sql}", params or [])
    return write_id
