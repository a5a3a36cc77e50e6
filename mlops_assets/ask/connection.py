"""A read-only DuckDB connection over copies of the published snapshots, that cannot touch any file, with a
time limit.

Questions read the Parquet snapshots in exports/ (never the warehouse file, which a run holds open, and a
snapshot is renamed into place whole). The catalog's tables, with only the catalog's columns, are copied
from the snapshots into a DuckDB file once per set of snapshots (keyed by their sizes and times: the first
question after a run pays the copy, a second or so at 30,000 series; measured: DuckDB's own storage answers
10x faster than a scan through Arrow). That file is opened read-only, with external access off and the
configuration locked: neither a write, nor a file read or written (COPY, read_csv, ATTACH), nor a SET, nor
an extension gets past DuckDB even if it got past the guard. A query that runs past its time limit is
interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.ask.catalog import TableInfo

TIME_LIMIT_SECONDS = 10.0
# A snapshot renamed into place exactly while it is copied can fail to read (cli.SNAPSHOT_READ_ATTEMPTS).
READ_ATTEMPTS = 3


class QueryTimeout(RuntimeError):
    """The query ran past its time limit and was interrupted."""


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _copy_tables(database: Path, catalog: dict[str, TableInfo]) -> None:
    with duckdb.connect(str(database)) as con:
        for info in catalog.values():
            schema, _ = info.name.split(".")
            columns = ", ".join(f'"{c}"' for c in info.columns)
            con.execute(f'create schema if not exists "{schema}"')
            con.execute(f"create table {info.name} as select {columns} from read_parquet({_quoted(str(info.path))})")


def tables_file(catalog: dict[str, TableInfo], folder: Path) -> Path:
    """The DuckDB file holding this set of snapshots' tables, copied once into ``folder`` (older sets removed)."""
    stamps = [[info.name, list(info.columns), str(info.path), info.path.stat().st_mtime_ns, info.path.stat().st_size]
              for info in catalog.values()]
    digest = hashlib.sha256(f"{duckdb.__version__} {json.dumps(stamps)}".encode()).hexdigest()[:16]
    database = folder / f"tables-{digest}.duckdb"
    if database.exists():
        return database
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tables-{digest}.{os.getpid()}.{threading.get_ident()}.tmp"
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            _copy_tables(tmp, catalog)
            os.replace(tmp, database)
            break
        except duckdb.IOException:
            if attempt == READ_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
        finally:
            tmp.unlink(missing_ok=True)
            tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    # An open reader keeps an older file's data until it closes (POSIX): removing it here is safe.
    for older in folder.glob("tables-*.duckdb"):
        if older != database:
            older.unlink(missing_ok=True)
    return database


@contextmanager
def snapshot_connection(catalog: dict[str, TableInfo], folder: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the catalog's tables as the snapshots hold them (copied into ``folder``)."""
    config = {"autoload_known_extensions": False, "autoinstall_known_extensions": False}
    con = duckdb.connect(str(tables_file(catalog, folder)), read_only=True, config=config)
    try:
        con.execute("set enable_external_access = false")
        con.execute("set lock_configuration = true")
        yield con
    finally:
        con.close()


def run_query(con: duckdb.DuckDBPyConnection, sql: str, seconds: float = TIME_LIMIT_SECONDS) -> pd.DataFrame:
    """The query's rows; QueryTimeout when it runs past ``seconds`` (interrupted from a timer thread)."""
    timer = threading.Timer(seconds, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        return con.execute(sql).df()
    except duckdb.InterruptException:
        raise QueryTimeout(f"the query ran past its time limit of {seconds:g} s and was stopped") from None
    finally:
        timer.cancel()
