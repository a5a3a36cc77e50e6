"""What changed in the landing zone since the last look: the pure half of the landing-zone sensor.

Convention for writers: copy a file under a temporary name (``.tmp``, ``.part`` suffix or a leading dot)
and rename it when complete. As a second guard, a file modified in the last ``settle_seconds`` is left for
the next look, so a copy still growing under its final name is not read half-way.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlops_assets.ingestion import file_sha256, list_landing_files
from mlops_assets.settings import LANDING_TABLES


@dataclass(frozen=True)
class LandingFile:
    table: str
    path: str  # relative to the landing root, e.g. "sales_orders/2026-w40.csv"
    sha256: str


@dataclass
class LandingScan:
    ready: list[LandingFile] = field(default_factory=list)
    settling: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    cursor: dict[str, list] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{len(self.ready)} new or changed", f"{self.unchanged} unchanged"]
        if self.settling:
            parts.append(f"{len(self.settling)} still being written ({', '.join(self.settling[:5])})")
        if self.deleted:
            parts.append(f"{len(self.deleted)} deleted ({', '.join(self.deleted[:5])}; their rows stay)")
        return "landing zone: " + ", ".join(parts)


def load_cursor(raw: str | None) -> dict[str, list]:
    return json.loads(raw) if raw else {}


def dump_cursor(cursor: dict[str, list]) -> str:
    return json.dumps(cursor, sort_keys=True)


def scan_landing(
    landing_root: Path, cursor: dict[str, list], *, settle_seconds: float = 2.0, now: float | None = None
) -> LandingScan:
    """Compare the landing folders with the cursor (path -> [size, mtime, sha256]) of files already seen.

    The hash is computed only when size or mtime moved, so a quiet landing zone costs one stat per file.
    """
    now = time.time() if now is None else now
    scan = LandingScan()
    present = set()
    for table in LANDING_TABLES:
        for path in list_landing_files(landing_root / table):
            relative = path.relative_to(landing_root).as_posix()
            present.add(relative)
            stat = path.stat()
            known = cursor.get(relative)
            if known and known[0] == stat.st_size and known[1] == stat.st_mtime:
                scan.cursor[relative] = known
                scan.unchanged += 1
                continue
            if now - stat.st_mtime < settle_seconds:
                scan.settling.append(relative)
                if known:
                    scan.cursor[relative] = known
                continue
            digest = file_sha256(path)
            scan.cursor[relative] = [stat.st_size, stat.st_mtime, digest]
            if known and known[2] == digest:
                scan.unchanged += 1  # touched but same content
                continue
            scan.ready.append(LandingFile(table, relative, digest))
    scan.deleted = sorted(set(cursor) - present)
    return scan
