"""A landing folder ingested into a real DuckDB file as the raw asset does it: staged, then merged in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.ingest.raw_layer import FolderIngest, apply_staged, stage_folder
from mlops_assets.warehouse import read_table

FILES, REJECTED, READMITTED = "raw.ingested_files", "raw.rejected_rows", "raw.readmitted_rows"


@dataclass
class RawRun:
    staged: FolderIngest
    table: pd.DataFrame
    rejected: pd.DataFrame  # the whole quarantine after the run
    readmitted: int
    written: bool


def ingest(root: Path, db: Path, table: str, **kwargs) -> RawRun:
    """``kwargs`` go to stage_folder; the quarantine and the logs come from the database, as in a run."""
    name = f"raw.{table}"
    with duckdb.connect(str(db)) as con:
        existing = read_table(con, name, missing_ok=True)
        staged = stage_folder(
            table, landing_root=root, stage_dir=db.parent / "stage", existing_columns=list(existing.columns),
            ingested_files=read_table(con, FILES, missing_ok=True),
            quarantine=read_table(con, REJECTED, missing_ok=True),
            readmitted_before=read_table(con, READMITTED, missing_ok=True), **kwargs)
        written, _, readmitted = apply_staged(con, staged, rejected_table=REJECTED, files_table=FILES,
                                              readmitted_table=READMITTED)
        return RawRun(staged, read_table(con, name), read_table(con, REJECTED), readmitted, bool(written))
