"""Incremental ingestion of one landing folder into its raw table.

Files are tracked by content hash, so the same file never adds anything twice; rows are merged on the
table's natural key, so a later file corrects a row by replacing it. Files of one batch are applied in the
order they arrived (modification time, then name), and a key that two files of the batch both hold is
reported. Every file is read and validated before anything is returned: one unreadable file fails the
whole batch and the caller writes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from mlops_assets.ingest.ingestion import REJECTED_COLUMNS, TABLES, merge_by_key, read_landing_file
from mlops_assets.ingest.landing_files import file_sha256, list_table_folder
from mlops_assets.ingest.readmission import READMITTED_DTYPES, readmit

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
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, why it is not read)
    conflicts: pd.DataFrame = field(default_factory=pd.DataFrame)  # key, replaced and kept "file:line"
    readmitted: pd.DataFrame = field(default_factory=lambda: _typed([], READMITTED_DTYPES))

    @property
    def changed(self) -> bool:
        return not self.files.empty or not self.readmitted.empty


def batch_conflicts(batch: list[pd.DataFrame], key: list[str]) -> pd.DataFrame:
    """Keys held by more than one file of a batch: which version was replaced and which one was kept."""
    if len(batch) < 2:
        return pd.DataFrame(columns=[*key, "replaced", "kept"])
    rows = pd.concat([b[[*key, "source_file", "source_row"]] for b in batch], ignore_index=True)
    rows["at"] = rows["source_file"] + ":" + rows["source_row"].astype(str)
    held = rows[rows.duplicated(key, keep=False)]
    kept = held.groupby(key, sort=True)["at"].agg(["last", list]).reset_index()
    kept["replaced"] = [", ".join(a for a in at if a != last) for at, last in zip(kept["list"], kept["last"],
                                                                                 strict=True)]
    return kept.rename(columns={"last": "kept"})[[*key, "replaced", "kept"]]


def keep_actuals(existing: pd.DataFrame, rows: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """``rows`` whose empty y takes the y ``existing`` holds for the same key: with regressors declared, a
    file of planned rows (empty y) may cover a period that has its actual, and must not erase it."""
    blank = rows["y"].isna().to_numpy()
    if not blank.any():
        return rows
    known = existing.dropna(subset=["y"]).set_index(key)["y"]
    rows = rows.copy()
    rows.loc[blank, "y"] = known.reindex(pd.MultiIndex.from_frame(rows.loc[blank, key])).to_numpy()
    return rows


def ingest_folder(
    table: str,
    *,
    landing_root: Path,
    existing: pd.DataFrame,
    ingested_files: pd.DataFrame,
    column_mapping: dict[str, str] | None = None,
    known_ids: dict[str, set[str]] | None = None,
    quarantine: pd.DataFrame | None = None,
    readmitted_before: pd.DataFrame | None = None,
    today: date | None = None,
    now: datetime | None = None,
    settle_seconds: float = 0.0,
    extra_numbers: Sequence[str] = (),
) -> FolderIngest:
    """``settle_seconds``: a file modified more recently than that may still be being written under its
    final name; it is left for the run its own sensor tick will start. ``quarantine`` (raw.rejected_rows)
    and ``readmitted_before`` (raw.readmitted_rows): rows rejected only for an id unknown then are taken
    back once ``known_ids`` holds that id. ``extra_numbers``: numeric columns the settings declare beyond the
    table's own (regressors.series_columns); when the table does not hold one yet, every file in the folder
    is read again, so that a column declared after its files arrived is not missing."""
    now = now or datetime.now().replace(microsecond=0)
    seen = set()
    undeclared_before = (existing is not None and not existing.empty
                         and not set(extra_numbers) <= set(existing.columns))
    if not ingested_files.empty and not undeclared_before:
        mine = ingested_files[ingested_files["table_name"] == table]
        seen = set(zip(mine["source_file"], mine["sha256"], strict=True))

    listing = list_table_folder(landing_root / table, landing_root)
    new_rows, rejected, files, skipped, settling = [], [], [], [], []
    for path in listing.files:
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
            extra_numbers=extra_numbers,
        )
        new_rows.append(result.rows)
        rejected.append(result.rejected)
        files.append([table, relative, digest, len(result.rows), len(result.rejected), now])

    key = list(TABLES[table].key)
    merged = existing if existing is not None else pd.DataFrame()
    back = readmit(table, quarantine, readmitted_before, merged, column_mapping=column_mapping,
                   known_ids=known_ids, today=today or now.date(), now=now)
    # Re-admitted rows arrived before this batch: they go in first, and the batch's files correct them.
    for rows in [back.rows, *new_rows]:
        if not rows.empty:
            if extra_numbers and not merged.empty:
                rows = keep_actuals(merged, rows, key)
            merged = rows if merged.empty else merge_by_key(merged, rows, key)
    return FolderIngest(
        table=merged.reset_index(drop=True),
        rejected=pd.concat([_typed([], REJECTED_DTYPES), *rejected], ignore_index=True).astype(REJECTED_DTYPES),
        files=_typed(files, INGESTED_FILES_DTYPES),
        skipped=skipped,
        settling=settling,
        ignored=listing.ignored,
        conflicts=batch_conflicts(new_rows, key),
        readmitted=back.log,
    )
