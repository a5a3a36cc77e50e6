"""Quarantined rows taken back once the master data they named arrives.

An order line for a product whose master row comes a week later is rejected as "unknown product". Its file
is then ingested (its hash is known), so dropping it again changes nothing. Instead, each run of the table
looks at the rows of ``raw.rejected_rows`` whose *only* faults were unknown ids, validates their recorded
cells again against today's ids, and takes back those that now pass. ``raw.readmitted_rows`` logs each one,
so it is taken back once; ``raw.rejected_rows`` stays the log of what was rejected when.

A taken-back row keeps its file, line and arrival time, and it only replaces a row of the same key that
arrived before it: a later correction of that key wins.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.ingest.ingestion import TABLES, UNKNOWN_ID, validate_table
from mlops_assets.ingest.reading import RECORD_CHARS, LandingFileError, RawTable

READMITTED_DTYPES = {"table_name": "object", "source_file": "object", "source_row": "int64",
                     "rejected_at": "datetime64[ns]", "readmitted_at": "datetime64[ns]"}
_ROW = ["source_file", "source_row", "rejected_at"]


def _candidates(table: str, quarantine: pd.DataFrame | None, before: pd.DataFrame | None) -> pd.DataFrame:
    """One entry per rejected row of ``table`` whose every reason was an unknown id, not taken back yet."""
    if quarantine is None or quarantine.empty:
        return pd.DataFrame()
    mine = quarantine[quarantine["table_name"] == table].astype({"rejected_at": "datetime64[ns]"})
    only_ids = (mine["reason"].str.contains(UNKNOWN_ID, regex=False)
                .groupby([mine[c] for c in _ROW]).transform("all"))
    mine = mine[only_ids.to_numpy(dtype=bool)].drop_duplicates(_ROW)
    if before is not None and not before.empty:
        done = pd.MultiIndex.from_frame(before[_ROW].astype({"rejected_at": "datetime64[ns]"}))
        mine = mine[~pd.MultiIndex.from_frame(mine[_ROW]).isin(done)]
    return mine


def readmit(table: str, quarantine: pd.DataFrame | None, before: pd.DataFrame | None, *,
            column_mapping: dict[str, str] | None, known_ids: dict[str, set[str]] | None,
            today: date) -> pd.DataFrame:
    """Rows of ``quarantine`` that pass today, the latest arrival of each key, in canonical form.

    Only those the table holds nothing newer for are taken back; the merge decides that in SQL, and logs them.
    """
    candidates = _candidates(table, quarantine, before)
    if candidates.empty or not known_ids:
        return pd.DataFrame()
    spec, kept = TABLES[table], []
    for (source_file, rejected_at), group in candidates.groupby(["source_file", "rejected_at"], sort=True):
        records = pd.DataFrame([json.loads(r) for r in group["raw_record"]]).fillna("").astype(str)
        raw = RawTable(records.reset_index(drop=True), group["source_row"].to_numpy(dtype=np.int64), True,
                       RECORD_CHARS + 1)
        try:
            result = validate_table(raw, spec, path=Path(source_file), source_file=source_file,
                                    column_mapping=column_mapping, known_ids=known_ids, today=today,
                                    ingested_at=pd.Timestamp(rejected_at))
        except (LandingFileError, ValueError):  # the column mapping changed since: leave them quarantined
            continue
        kept.append(result.rows)
    rows = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()
    if rows.empty:
        return rows
    # Among versions of one key, the latest arrival.
    rows = rows.sort_values(["ingested_at", "source_row"], kind="stable").drop_duplicates(list(spec.key), keep="last")
    return rows.reset_index(drop=True)
