"""One raw table's run: its landing folder's new files staged, merged into the warehouse, snapshots republished.

Files are read and staged with the warehouse closed: readers are kept out only while it merges.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops_assets.catalog import INGESTED_FILES, READMITTED_ROWS, REJECTED_ROWS
from mlops_assets.ingest.raw_layer import FolderIngest, apply_staged, stage_folder
from mlops_assets.settings import DataPaths, Settings
from mlops_assets.warehouse import Connect, publish_snapshot_from_table, read_table, table_exists

# Reference tables whose ids a table's rows must use, and the raw tables they come from.
REFERENCES = {
    "sales_orders": {"product_id": "products", "customer_id": "customers"},
    "promotions": {"product_id": "products", "customer_id": "customers"},
}
# Event metadata and log lines list this many items at most: a landing zone of thousands of files, or a
# batch full of conflicts, must not make an event of megabytes.
SHOWN_ITEMS = 20


@dataclass(frozen=True)
class RawBatch:
    table: str
    staged: FolderIngest
    readmitted: int
    settle_seconds: float

    def messages(self) -> list[tuple[str, str]]:
        """(level, message) lines for the run's log: per file, readmissions, conflicts, what was left aside."""
        staged, lines = self.staged, []
        for _, file in staged.files.iterrows():
            lines.append(("info", f"{file.source_file}: {file.n_rows} rows kept, {file.n_rejected} rejected to "
                                  f"{REJECTED_ROWS}"))
        lines.extend(("warning", notice) for notice in staged.notices)
        if self.readmitted:
            lines.append(("info", f"{self.readmitted} row(s) rejected earlier for an unknown id taken back now "
                                  f"that the id is known (logged in {READMITTED_ROWS})"))
        if staged.n_conflicts:
            shown = "; ".join(f"{r.replaced} replaced by {r.kept}"
                              for r in staged.conflicts.head(SHOWN_ITEMS // 4).itertuples())
            lines.append(("warning", f"{staged.n_conflicts} key(s) held by more than one file of this batch; the "
                                     f"later arrival (modification time, then name) wins: {shown}"))
        if staged.ignored:
            shown = "; ".join(f"{path}: {why}" for path, why in staged.ignored[:SHOWN_ITEMS])
            lines.append(("warning", f"{len(staged.ignored)} entr(ies) of the landing folder not read: {shown}"))
        if staged.settling:
            lines.append(("warning", f"left for a later run, modified in the last {self.settle_seconds:g} s: "
                                     f"{staged.settling}"))
        if staged.skipped:
            lines.append(("info", f"{len(staged.skipped)} file(s) already ingested with the same content: skipped"))
        return lines

    def summary(self) -> dict[str, object]:
        staged = self.staged
        return {
            "new_files": staged.files["source_file"].head(SHOWN_ITEMS).tolist(),
            "new_file_count": len(staged.files),
            "unchanged_files": len(staged.skipped),
            "ignored_files": [f"{p}: {why}" for p, why in staged.ignored[:SHOWN_ITEMS]],
            "batch_key_conflicts": staged.n_conflicts,
            "readmitted_rows": self.readmitted,
            "rejected_rows": staged.n_rejected,
        }


def _known_ids(con, table: str) -> dict[str, set[str]] | None:
    refs = REFERENCES.get(table)
    if not refs:
        return None
    known = {}
    for column, ref in refs.items():
        frame = read_table(con, f"raw.{ref}", missing_ok=True)
        known[column] = set(frame[column]) if column in frame else set()
    return known


def _columns(con, name: str) -> list[str]:
    if not table_exists(con, name):
        return []
    return [c[0] for c in con.execute(f"select * from {name} limit 0").description]


def declared_columns(table: str, settings: Settings) -> tuple[str, ...]:
    """Numeric columns the settings add to a table: a series file's regressors."""
    return tuple(settings.regressors.series_columns) if table == "series" else ()


def declared_texts(table: str, settings: Settings) -> tuple[str, ...]:
    """Text columns the settings add to a table: a series file's static attributes beyond brand and category."""
    return tuple(settings.regressors.file_statics) if table == "series" else ()


def ingest_folder(connect: Connect, exports: Path, table: str, paths: DataPaths, settings: Settings,
                  settle_seconds: float) -> RawBatch:
    """Stage the table's landing folder and merge it into raw.<table> (quarantine, readmission, file log)."""
    name, extra, referencing = f"raw.{table}", declared_columns(table, settings), table in REFERENCES
    with connect() as con:
        ingested = read_table(con, INGESTED_FILES, missing_ok=True)
        existing, known = _columns(con, name), _known_ids(con, table)
        quarantine = read_table(con, REJECTED_ROWS, missing_ok=True) if referencing else None
        readmitted_before = read_table(con, READMITTED_ROWS, missing_ok=True) if referencing else None
    paths.engine.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.engine, prefix=f"raw-{table}-") as stage_dir:
        staged = stage_folder(
            table, landing_root=paths.landing, stage_dir=Path(stage_dir), ingested_files=ingested,
            existing_columns=existing, column_mapping=settings.column_mapping.get(table), known_ids=known,
            quarantine=quarantine, readmitted_before=readmitted_before, settle_seconds=settle_seconds,
            extra_numbers=extra, extra_texts=declared_texts(table, settings), chunk_rows=settings.ingest.chunk_rows,
            memory_mb=settings.compute.duckdb_memory_mb,
            today=settings.ingest.as_of, empty_y=settings.ingest.empty_y,
        )
        with connect() as con:
            written, write_id, readmitted = apply_staged(
                con, staged, rejected_table=REJECTED_ROWS, files_table=INGESTED_FILES,
                readmitted_table=READMITTED_ROWS)
            for written_table in written:
                publish_snapshot_from_table(con, exports, written_table, write_id)
    return RawBatch(table, staged, readmitted, settle_seconds)


def rejected_preview(batch: RawBatch) -> pd.DataFrame:
    return batch.staged.rejected_examples.drop(columns=["raw_record"])
