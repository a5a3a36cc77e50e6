"""Incremental ingestion of one landing folder into its raw table, a chunk of rows at a time.

Files are tracked by content hash, so the same file never adds anything twice; rows are merged on the
table's natural key, so a later file corrects a row by replacing it. Files of one batch are applied in the
order they arrived (modification time, then name), and a key that two files of the batch both hold is
reported. Every file is read and validated before anything is written: one unreadable file fails the
whole batch and the caller writes nothing.

Memory follows ``chunk_rows``, not the files or the table: each chunk is validated alone and its rows are
staged in a DuckDB file of their own (``stage_folder``); what needs the whole file (a key repeated across
chunks) or the whole table (the merge) is done there and in the warehouse in SQL (``merge_staged``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO

import duckdb
import pandas as pd

from mlops_assets import warehouse
from mlops_assets.ingest.ingestion import (
    REJECTED_COLUMNS,
    IngestResult,
    TableSpec,
    duplicate_entries,
    landing_name,
    table_spec,
    validate_table,
)
from mlops_assets.ingest.landing_files import list_table_folder
from mlops_assets.ingest.reading import LandingFileRefused, handle_sha256, open_landing_file, read_chunks
from mlops_assets.ingest.readmission import READMITTED_DTYPES, readmit
from mlops_assets.settings import ComputeSettings, IngestSettings

INGESTED_FILES_DTYPES = {
    "table_name": "object", "source_file": "object", "sha256": "object",
    "n_rows": "int64", "n_rejected": "int64", "ingested_at": "datetime64[ns]",
}
REJECTED_DTYPES = {**dict.fromkeys(REJECTED_COLUMNS, "object"), "source_row": "int64", "rejected_at": "datetime64[ns]"}
# Rows of a conflict or quarantine listing kept for logs and metadata.
SHOWN = 20
STILL_WRITTEN = ("a temporary name (a leading dot, or .tmp, .part, .partial, .crdownload): still being written; "
                 "read once it is renamed to its final name")


def _typed(rows: list, dtypes: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(dtypes)).astype(dtypes)


def empty_table(table: str, extra_numbers: Sequence[str] = (), extra_texts: Sequence[str] = ()) -> pd.DataFrame:
    """The table's canonical columns with no rows, so that an empty landing folder still makes a table."""
    dtypes = {**table_spec(table, extra_numbers, extra_texts).dtypes, "source_file": "object", "source_row": "int64",
              "ingested_at": "datetime64[ns]"}
    return _typed([], dtypes)


@dataclass
class FolderIngest:
    table: str
    key: list[str]
    stage: Path  # DuckDB file: ``rows`` (with _seq: 0 re-admitted, then the files in order) and ``rejected``
    files: pd.DataFrame
    now: datetime
    n_rejected: int = 0
    rejected_examples: pd.DataFrame = field(default_factory=lambda: _typed([], REJECTED_DTYPES))
    skipped: list[str] = field(default_factory=list)
    settling: list[str] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, why it is not read)
    conflicts: pd.DataFrame = field(default_factory=pd.DataFrame)  # the first SHOWN: key, replaced, kept
    n_conflicts: int = 0
    readmission_candidates: int = 0
    empty_y: str = "keep"  # settings ingest.empty_y: what an empty y does to a known one (series)
    notices: list[str] = field(default_factory=list)  # what the merge did that the run must say


def _stage_connection(stage: Path, memory_mb: int) -> duckdb.DuckDBPyConnection:
    # One thread: staging appends one chunk at a time, and every thread would hold buffers of its own.
    return duckdb.connect(str(stage), config={"memory_limit": f"{int(memory_mb)}MiB", "threads": 1,
                                              "temp_directory": str(stage.with_suffix(".spill"))})


def stage_folder(
    table: str,
    *,
    landing_root: Path,
    stage_dir: Path,
    ingested_files: pd.DataFrame,
    existing_columns: Sequence[str] = (),
    column_mapping: dict[str, str] | None = None,
    known_ids: dict[str, set[str]] | None = None,
    quarantine: pd.DataFrame | None = None,
    readmitted_before: pd.DataFrame | None = None,
    today: date | None = None,
    now: datetime | None = None,
    settle_seconds: float = 0.0,
    extra_numbers: Sequence[str] = (),
    extra_texts: Sequence[str] = (),
    chunk_rows: int | None = None,
    memory_mb: int = ComputeSettings().duckdb_memory_mb,
    empty_y: str = IngestSettings().empty_y,
) -> FolderIngest:
    """Read, validate and stage the folder's new files, ``chunk_rows`` rows at a time (None: a file at once).

    ``settle_seconds``: a file modified more recently than that may still be being written under its final
    name; it is left for the run its own sensor tick will start. ``quarantine`` (raw.rejected_rows) and
    ``readmitted_before`` (raw.readmitted_rows): rows rejected only for an id unknown then are taken back
    once ``known_ids`` holds that id. ``extra_numbers``: numeric columns the settings declare beyond the
    table's own (regressors.series_columns); when the table (``existing_columns``) does not hold one yet,
    every file in the folder is read again, so that a column declared after its files arrived is not missing.
    ``extra_texts``: the same for text columns (regressors.statics of series files).
    ``memory_mb``: the staging database's memory limit (compute.duckdb_memory_mb); beyond it DuckDB spills.
    ``today``: the last day an actual may be dated (ingest.as_of; default the day of ``now``). ``empty_y``
    (ingest.empty_y): whether an empty y in a series file keeps or erases a value an earlier version held.
    """
    now = now or datetime.now().replace(microsecond=0)
    today = today or now.date()
    spec, seen = table_spec(table, extra_numbers, extra_texts), set()
    undeclared_before = bool(existing_columns) and not {*extra_numbers, *extra_texts} <= set(existing_columns)
    if not ingested_files.empty and not undeclared_before:
        mine = ingested_files[ingested_files["table_name"] == table]
        seen = set(zip(mine["source_file"], mine["sha256"], strict=True))

    stage_dir.mkdir(parents=True, exist_ok=True)
    result = FolderIngest(table, list(spec.key), stage_dir / f"{table}.duckdb", _typed([], INGESTED_FILES_DTYPES),
                          now, empty_y=empty_y)
    listing = list_table_folder(landing_root / table, landing_root)
    result.ignored = listing.ignored + [
        (path.relative_to(landing_root).as_posix(), STILL_WRITTEN) for path in listing.temporary]
    files = []
    with _stage_connection(result.stage, memory_mb) as con:
        _create_stage(con, table, extra_numbers, extra_texts)
        back = readmit(table, quarantine, readmitted_before, column_mapping=column_mapping, known_ids=known_ids,
                       today=today)
        result.readmission_candidates = len(back)
        _stage_rows(con, back, 0)
        for path in listing.files:
            relative = path.relative_to(landing_root).as_posix()
            try:
                handle = open_landing_file(path, landing_root)
            except LandingFileRefused as refused:
                result.ignored.append((relative, str(refused)))
                continue
            with handle:  # every pass below reads this open file, never the name again
                if time.time() - os.fstat(handle.fileno()).st_mtime < settle_seconds:
                    result.settling.append(relative)
                    continue
                digest = handle_sha256(handle)
                if (relative, digest) in seen:
                    result.skipped.append(relative)
                    continue
                seq = len(files) + 1
                kept, rejected = _stage_file(con, path, handle, seq, spec,
                                             source_file=landing_name(path, landing_root),
                                             column_mapping=column_mapping, known_ids=known_ids, today=today,
                                             ingested_at=pd.Timestamp(now).floor("s"), chunk_rows=chunk_rows)
            files.append([table, relative, digest, kept, rejected, now])
        result.files = _typed(files, INGESTED_FILES_DTYPES)
        result.n_rejected = int(con.execute("select count(*) from rejected").fetchall()[0][0])
        result.rejected_examples = con.execute(
            f"select {', '.join(REJECTED_COLUMNS)} from rejected order by _seq, source_row, _ordinal limit {SHOWN}"
        ).df()
        if len(files) > 1:  # a key held twice needs two files of this batch
            result.n_conflicts, result.conflicts = _conflicts(con, result.key)
    return result


def _create_stage(con: duckdb.DuckDBPyConnection, table: str, extra_numbers: Sequence[str],
                  extra_texts: Sequence[str] = ()) -> None:
    con.register("_empty_rows", warehouse._typed_strings(empty_table(table, extra_numbers, extra_texts)))
    con.execute("create or replace table rows as select *, 0 as _seq from _empty_rows")
    con.register("_empty_rejected", warehouse._typed_strings(_typed([], REJECTED_DTYPES)))
    con.execute("create or replace table rejected as select *, 0 as _seq, 0::bigint as _ordinal from _empty_rejected")
    con.execute("create or replace table duplicates (_seq integer, source_row bigint, first_line bigint)")


def _stage_rows(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, seq: int) -> None:
    if not rows.empty:
        con.register("_chunk", warehouse._typed_strings(rows))
        con.execute(f"insert into rows by name select *, {seq} as _seq from _chunk").fetchall()
        con.unregister("_chunk")


def _stage_rejected(con: duckdb.DuckDBPyConnection, rejected: pd.DataFrame, seq: int) -> None:
    if not rejected.empty:
        base = con.execute("select count(*) from rejected").fetchall()[0][0] + 1
        con.register("_chunk", warehouse._typed_strings(rejected.assign(_ordinal=range(base, base + len(rejected)))))
        con.execute(f"insert into rejected by name select *, {seq} as _seq from _chunk").fetchall()
        con.unregister("_chunk")


def _stage_file(con: duckdb.DuckDBPyConnection, path: Path, handle: BinaryIO, seq: int, spec: TableSpec, *,
                source_file: str,
                column_mapping: dict[str, str] | None, known_ids: dict[str, set[str]] | None, today: date,
                ingested_at: pd.Timestamp, chunk_rows: int | None) -> tuple[int, int]:
    """Stage one file's rows and problems chunk by chunk; its rows and rejected entries once staged.

    A key repeated in the file is found in SQL across every chunk; only then is the file read a second time,
    for the records of the repeating lines (the quarantine keeps each one's cells).
    """
    for raw in read_chunks(path, chunk_rows, handle):
        checked: IngestResult = validate_table(raw, spec, path=path, source_file=source_file,
                                               column_mapping=column_mapping, known_ids=known_ids, today=today,
                                               ingested_at=ingested_at, duplicates=False)
        _stage_rows(con, checked.rows, seq)
        _stage_rejected(con, checked.rejected, seq)
    key = ", ".join(spec.key)
    con.execute(f"""insert into duplicates
        select _seq, source_row, first_line from (
            select _seq, source_row, min(source_row) over (partition by {key}) as first_line
            from rows where _seq = {seq}) where source_row <> first_line""").fetchall()
    if con.execute(f"select count(*) from duplicates where _seq = {seq}").fetchall()[0][0]:
        for raw in read_chunks(path, chunk_rows, handle):
            lines = (int(raw.line.min()), int(raw.line.max())) if len(raw.line) else (0, -1)
            first_line = dict(con.execute(f"select source_row, first_line from duplicates where _seq = {seq} "
                                          "and source_row between ? and ?", list(lines)).fetchall())
            if first_line:
                _stage_rejected(con, duplicate_entries(raw, first_line, spec, source_file, ingested_at), seq)
        con.execute(f"delete from rows where _seq = {seq} and source_row in "
                    f"(select source_row from duplicates where _seq = {seq})").fetchall()
    kept = con.execute(f"select count(*) from rows where _seq = {seq}").fetchall()[0][0]
    rejected = con.execute(f"select count(*) from rejected where _seq = {seq}").fetchall()[0][0]
    return int(kept), int(rejected)


def _conflicts(con: duckdb.DuckDBPyConnection, key: list[str]) -> tuple[int, pd.DataFrame]:
    """Keys held by more than one file of the batch: which versions were replaced and which one was kept."""
    keys = ", ".join(key)
    held = f"""select {keys}, string_agg(place, ', ' order by _seq) filter (where _seq < newest) as replaced,
                      arg_max(place, _seq) as kept
               from (select {keys}, _seq, source_file || ':' || source_row as place,
                            max(_seq) over (partition by {keys}) as newest from rows where _seq > 0)
               group by {keys} having count(*) > 1"""
    count = con.execute(f"select count(*) from ({held})").fetchall()[0][0]
    return int(count), con.execute(f"{held} order by {keys} limit {SHOWN}").df()


def apply_staged(con: duckdb.DuckDBPyConnection, staged: FolderIngest, *, rejected_table: str, files_table: str,
                 readmitted_table: str) -> tuple[list[str], str | None, int]:
    """Merge the stage into the warehouse in one transaction, when anything changed or the table is missing or
    empty (the side tables then exist from the first run on). Returns the tables written, the write id (None:
    nothing written) and the rows taken back."""
    name = f"raw.{staged.table}"
    con.execute(f"attach {warehouse.sql_string(staged.stage)} as stage (read_only)")
    try:
        readmitted = 0
        if staged.readmission_candidates:
            readmitted = con.execute(f"select count(*) from ({_readmitted(con, staged)})").fetchall()[0][0]
        empty = (not warehouse.table_exists(con, name)
                 or not con.execute(f"select count(*) from {name}").fetchall()[0][0])
        if staged.files.empty and not readmitted and not empty:
            return [], None, 0
        tables = [name, files_table, rejected_table, readmitted_table]
        with warehouse.transaction(con, tables) as write_id:
            readmitted = merge_staged(con, staged, rejected_table=rejected_table, files_table=files_table,
                                      readmitted_table=readmitted_table)
        return tables, write_id, readmitted
    finally:
        con.execute("detach stage")


def _readmitted(con: duckdb.DuckDBPyConnection, staged: FolderIngest) -> str:
    """Re-admitted rows that the table holds nothing newer for (the stage attached as ``stage``)."""
    name = f"raw.{staged.table}"
    if not warehouse.table_exists(con, name):
        return "select * from stage.rows where _seq = 0"
    on = " and ".join(f"t.{c} = r.{c}" for c in staged.key)
    return (f"select * from stage.rows r where _seq = 0 and not exists "
            f"(select 1 from {name} t where {on} and t.ingested_at >= r.ingested_at)")


def merge_staged(con: duckdb.DuckDBPyConnection, staged: FolderIngest, *, rejected_table: str,
                 files_table: str, readmitted_table: str) -> int:
    """Inside the caller's transaction, with the stage attached: the new table, the side tables appended, and
    the count of rows taken back.

    The existing table never leaves DuckDB: every version of a key (the table's, the re-admitted rows', each
    file's in arrival order) is ranked, the last one kept. In a series, an empty y of the version kept takes
    the last value an earlier version held (``staged.empty_y`` keep: a file of planned rows or a NaN must not
    erase an actual) or erases it (erase); either way ``staged.notices`` says so.
    """
    name, keys = f"raw.{staged.table}", ", ".join(staged.key)
    exists = warehouse.table_exists(con, name)
    # Decided against the table as it was: a table, not a view, since the table is replaced below.
    con.execute(f"create or replace temp table _readmitted as {_readmitted(con, staged)}")
    versions = ("select *, -1 as _seq from " + name + " union all by name " if exists else "") + (
        "select * from _readmitted union all by name select * from stage.rows where _seq > 0")
    actuals = "y" in table_spec(staged.table).numbers
    known = (f", last_value(y ignore nulls) over (partition by {keys} order by _seq rows between unbounded "
             "preceding and 1 preceding) as _known") if actuals else ""
    con.execute(f"create or replace temp table _merged as select *{known} from ({versions}) "
                f"qualify row_number() over (partition by {keys} order by _seq desc) = 1")
    keep = actuals and staged.empty_y == "keep"
    if actuals:
        staged.notices += _empty_y_notices(con, staged.empty_y)
    con.execute(f"create or replace table {name} as select * exclude (_seq{', _known' if actuals else ''})"
                f"{' replace (coalesce(y, _known) as y)' if keep else ''} from _merged order by {keys}")
    con.execute("drop table _merged")
    warehouse.write_frames(con, append={
        files_table: staged.files, rejected_table: _typed([], REJECTED_DTYPES),
        readmitted_table: _typed([], READMITTED_DTYPES)})
    con.execute(f"create or replace temp view _rejected_in as select {', '.join(REJECTED_COLUMNS)} "
                "from stage.rejected order by _seq, source_row, _ordinal")
    warehouse.add_new_columns(con, rejected_table, "_rejected_in")
    con.execute(f"insert into {rejected_table} by name select * from _rejected_in").fetchall()
    readmitted = con.execute(f"""insert into {readmitted_table} by name
        select ? as table_name, source_file, source_row, ingested_at as rejected_at, ?::timestamp_ns as readmitted_at
        from _readmitted order by ingested_at, source_row, source_file""",
                             [staged.table, pd.Timestamp(staged.now).to_pydatetime()]).fetchall()[0][0]
    con.execute("drop table _readmitted")
    con.execute("drop view _rejected_in")
    return int(readmitted)


def _empty_y_notices(con: duckdb.DuckDBPyConnection, empty_y: str) -> list[str]:
    """What the empty y values of the series versions kept (``_merged``) did to values earlier versions held."""
    where = "from _merged where y is null and _known is not null"
    count = con.execute(f"select count(*) {where}").fetchall()[0][0]
    if not count:
        return []
    shown = con.execute(f"select source_file, source_row, unique_id, ds, _known {where} "
                        f"order by source_file, source_row limit {SHOWN}").fetchall()
    done = "kept" if empty_y == "keep" else "erased"
    places = "; ".join(f"{file} line {line} (column y, {uid} {pd.Timestamp(ds):%Y-%m-%d}: {value:g} {done})"
                       for file, line, uid, ds, value in shown)
    if empty_y == "keep":
        what = (f"{count} empty y value(s) left the value an earlier file gave in place (setting ingest.empty_y: "
                "keep; 'erase' empties it)")
    else:
        what = f"{count} empty y value(s) erased the value an earlier file gave (setting ingest.empty_y: erase)"
    return [f"{what}: {places}{'; ...' if count > len(shown) else ''}"]
