"""Keep the MLflow store usable when its data directory is moved or copied.

MLflow records absolute artifact locations in its SQLite store (experiments, runs, logged models, model
versions). Copied elsewhere, such a store would write its new artifacts into the original directory;
moved, it fails with ``No such artifact``. The product's store keeps its artifacts in
``<data dir>/mlflow/artifacts``, so a location under another directory's ``mlflow/artifacts`` means the
directory moved: every such prefix is rewritten to the current folder, in one SQLite transaction.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

ARTIFACTS_SUFFIX = "/mlflow/artifacts"
# Columns of MLflow 3's SQL store that hold artifact locations; a column an MLflow version lacks is skipped.
LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)


def stale_locations(db: Path, artifacts: Path) -> list[str]:
    """Artifact roots the store records under another data directory's mlflow/artifacts, sorted."""
    current = artifacts.resolve().as_uri()
    with closing(sqlite3.connect(db)) as con:
        if not _has_column(con, "experiments", "artifact_location"):
            return []
        found = {row[0].rstrip("/") for row in con.execute("select artifact_location from experiments") if row[0]}
    return sorted(loc for loc in found if loc.endswith(ARTIFACTS_SUFFIX) and loc != current)


def relocate_store(db: Path, artifacts: Path) -> dict[str, int]:
    """Point every artifact location of another data directory at ``artifacts``.

    Returns the number of rewritten values per old root (empty when the store already points here).
    """
    db, current = Path(db), artifacts.resolve().as_uri()
    if not db.exists():
        return {}
    olds = stale_locations(db, artifacts)
    rewritten: dict[str, int] = {}
    with closing(sqlite3.connect(db)) as con, con:  # one transaction: all locations move, or none
        for old in olds:
            count = 0
            for table, column in LOCATION_COLUMNS:
                if not _has_column(con, table, column):
                    continue
                count += con.execute(
                    f"update {table} set {column} = ? || substr({column}, ?) "  # noqa: S608 - names are constants
                    f"where {column} = ? or substr({column}, 1, ?) = ?",
                    [current, len(old) + 1, old, len(old) + 1, old + "/"],
                ).rowcount
            rewritten[old] = count
    return rewritten


def _has_column(con: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in con.execute(f"pragma table_info({table})"))
