"""Incremental ingestion of one landing folder into its raw table.

Files are tracked by content hash, so the same file never adds anything twice; rows are merged on the
table's natural key, so a later file corrects a row by replacing it. Every file is read and validated
before anything is returned: one unreadable file fails the whole batch and the caller writes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from mlops_assets.ingest.ingestion import (
    REJECTED_COLUMNS,
    TABLES,
    file_sha256,
    list_landing_files,
    merge_by_key,
    read_landing_file,
)

INGESTED_FILES_DTYPES = {
    "table_name": "object", "source_file": "object", "sha256": "object",
    "n_rows": "int64", "n_rejected": "int64", "ingested_at": "datetime64[ns]",
}
REJECTED_DTYPES = {**dict.fromkeys(REJECTED_COLUMNS, "object"), "source_row": "int64", "rejected_at": "datetime64[ns]"}


def _typed(rows: list, dtypes: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(dtypes)).astype(dtypes)


@dataclass
class FolderIngest:
    table: pd.DataFrame
    rejected: pd.DataFrame
    files: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    settling: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return not self.files.empty


def ingest_folder(
    table: str,
    *,
    landing_root: Path,
    existing: pd.DataFrame,
    ingested_files: pd.DataFrame,
    column_mapping: dict[str, str] | None = None,
    known_ids: dict[str, set[str]] | None = None,
    today: date | None = None,
    now: datetime | None = None,
    settle_seconds: float = 0.0,
) -> FolderIngest:
    """``settle_seconds``: a file modified more recently than that may still be being written under its
    final name; it is left for the run its own sensor tick will start."""
    now = now or datetime.now().replace(microsecond=0)
    seen = set()
    if not ingested_files.empty:
        mine = ingested_files[ingested_files["table_name"] == table]
        seen = set(zip(mine["source_file"], mine["sha256"], strict=True))

    new_rows, rejected, files, skipped, settling = [], [], [], [], []
    for path in list_landing_files(landing_root / table):
        relative = path.relative_to(landing_root).as_posix()
        if time.time() - path.stat().st_mtime < settle_seconds:
            settling.append(relative)
            continue
        digest = file_sha256(path)
        if (relative, digest) in seen:
            skipped.append(relative)
            continue
        result = read_landing_file(
            path,
            table,
            landing_root=landing_root,
            column_mapping=column_mapping,
            known_ids=known_ids,
            today=today,
            ingested_at=now,
        )
        new_rows.append(result.rows)
        rejected.append(result.rejected)
        files.append([table, relative, digest, len(result.rows), len(result.rejected), now])

    merged = existing
    key = list(TABLES[table].key)
    for rows in new_rows:
        merged = rows if merged is None or merged.empty else merge_by_key(merged, rows, key)
    return FolderIngest(
        table=merged.reset_index(drop=True) if merged is not None else pd.DataFrame(),
        rejected=pd.concat([_typed([], REJECTED_DTYPES), *rejected], ignore_index=True).astype(REJECTED_DTYPES),
        files=_typed(files, INGESTED_FILES_DTYPES),
        skipped=skipped,
        settling=settling,
    )
