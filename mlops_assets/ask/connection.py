"""A read-only DuckDB connection over the published snapshots, that cannot touch any file, with a time limit.

Questions read the Parquet snapshots in exports/ (never the warehouse file, which a run holds open, and a
snapshot is renamed into place whole). Each catalog table is a view, holding only the catalog's columns,
over an Arrow dataset of its snapshot: Arrow reads the file, so DuckDB itself needs no file access at all.
The views live in a small DuckDB file opened read-only, with external access off and the configuration
locked: neither a write, nor a file read or written (COPY, read_csv, ATTACH), nor a SET, nor an extension
gets past DuckDB even if it got past the guard. A query that runs past its time limit is interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as arrow_dataset

from mlops_assets.ask.catalog import TableInfo

TIME_LIMIT_SECONDS = 10.0
# A snapshot renamed into place exactly while a query opens it can fail to read (cli.SNAPSHOT_READ_ATTEMPTS).
READ_ATTEMPTS = 3


class QueryTimeout(RuntimeError):
    """The query ran past its time limit and was interrupted."""


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _source(table: str) -> str:
    return "_snapshot_" + table.replace(".", "__")


def _register(con: duckdb.DuckDBPyConnection, catalog: dict[str, TableInfo]) -> None:
    for info in catalog.values():
        con.register(_source(info.name), arrow_dataset.dataset(str(info.path), format="parquet"))


def _write_views(database: Path, catalog: dict[str, TableInfo]) -> None:
    with duckdb.connect(str(database)) as con:
        _register(con, catalog)
        for info in catalog.values():
            schema, _ = info.name.split(".")
            columns = ", ".join(f'"{c}"' for c in info.columns)
            con.execute(f'create schema if not exists "{schema}"')
            con.execute(f"create view {info.name} as select {columns} from {_source(info.name)}")


def _views_file(catalog: dict[str, TableInfo]) -> Path:
    """The file of views for this catalog, written once: the views name tables and columns, not the data
    (the snapshots are registered at each connection), so it serves every question until a column changes."""
    shape = json.dumps([[info.name, list(info.columns)] for info in catalog.values()])
    digest = hashlib.sha256(f"{duckdb.__version__} {shape}".encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"mlops-ask-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    database = folder / f"views-{digest}.duckdb"
    if not database.exists():
        tmp = folder / f".views-{digest}.{os.getpid()}.{threading.get_ident()}.duckdb"
        _write_views(tmp, catalog)
        os.replace(tmp, database)
    return database


@contextmanager
def snapshot_connection(catalog: dict[str, TableInfo]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection whose catalog tables are views over their snapshots (``TableInfo.path``)."""
    config = {"autoload_known_extensions": False, "autoinstall_known_extensions": False}
    con = duckdb.connect(str(_views_file(catalog)), read_only=True, config=config)
    try:
        _register(con, catalog)
        con.execute("set enable_external_access = false")
        con.execute("set lock_configuration = true")
        yield con
    finally:
        con.close()


def run_query(con: duckdb.DuckDBPyConnection, sql: str, seconds: float = TIME_LIMIT_SECONDS) -> pd.DataFrame:
    """The query's rows; QueryTimeout when it runs past ``seconds`` (interrupted from a timer thread)."""
    for attempt in range(1, READ_ATTEMPTS + 1):
        timer = threading.Timer(seconds, con.interrupt)
        timer.daemon = True
        timer.start()
        started = time.monotonic()
        try:
            return con.execute(sql).df()
        except duckdb.InterruptException:
            raise QueryTimeout(f"the query ran past its time limit of {seconds:g} s and was stopped") from None
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
                duckdb.PermissionException, duckdb.InvalidInputException):
            raise
        except duckdb.IOException:
            if attempt == READ_ATTEMPTS or time.monotonic() - started > seconds:
                raise
            time.sleep(0.05 * attempt)
        finally:
            timer.cancel()
    raise AssertionError("unreachable")
