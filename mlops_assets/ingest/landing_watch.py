"""What changed in the landing zone since the last look: the pure half of the landing-zone sensor.

Convention for writers: copy a file under a temporary name (``.tmp``, ``.part``, ``.partial``,
``.crdownload`` suffix or a leading dot) and rename it when complete; the rename is atomic, so a file under
its final name is whole. As a second guard, a file modified in the last ``settle_seconds`` is left for the
next look, so a copy still growing under its final name is not read half-way. Both kinds are reported as
"still being written" so that a stuck upload is visible in the sensor's skip reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlops_assets.ingest.landing_files import file_sha256, ignored_outside_tables, list_table_folder
from mlops_assets.ingest.reading import LandingFileRefused
from mlops_assets.settings import LANDING_TABLES

SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class LandingFile:
    table: str
    path: str  # relative to the landing root, e.g. "sales_orders/2026-w40.csv"
    sha256: str


@dataclass
class LandingScan:
    ready: list[LandingFile] = field(default_factory=list)
    settling: list[str] = field(default_factory=list)  # "path (why)" of files not read yet
    deleted: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # "path: why it is not read"
    unchanged: int = 0
    already_ingested: int = 0  # new to the cursor, but the warehouse holds the same content (say, from `make run`)
    cursor: dict[str, list] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{len(self.ready)} new or changed", f"{self.unchanged} unchanged"]
        if self.already_ingested:
            parts.append(f"{self.already_ingested} already ingested with the same content")
        if self.ready:
            parts[0] += f" ({', '.join(f.path for f in self.ready[:5])})"
        if self.settling:
            parts.append(f"{len(self.settling)} still being written, left for a later look "
                         f"({'; '.join(self.settling[:5])})")
        if self.ignored:
            parts.append(f"{len(self.ignored)} not read ({'; '.join(self.ignored[:5])}"
                         f"{'; ...' if len(self.ignored) > 5 else ''})")
        if self.deleted:
            parts.append(f"{len(self.deleted)} deleted ({', '.join(self.deleted[:5])}; their rows stay in the "
                         "warehouse)")
        return "landing zone: " + ", ".join(parts)


def load_cursor(raw: str | None) -> dict[str, list]:
    return json.loads(raw) if raw else {}


def dump_cursor(cursor: dict[str, list]) -> str:
    return json.dumps(cursor, sort_keys=True)


def scan_landing(
    landing_root: Path, cursor: dict[str, list], *, settle_seconds: float = SETTLE_SECONDS,
    now: float | None = None, ingested: set[tuple[str, str]] | None = None,
) -> LandingScan:
    """Compare the landing folders with the cursor (path -> [size, mtime, sha256]) of files already seen.

    The hash is computed only when size or mtime moved, so a quiet landing zone costs one stat per file.
    A file not read yet (temporary name, or modified less than ``settle_seconds`` ago) keeps its previous
    cursor entry, so it is compared again at the next look. A file whose (table, sha256) is in ``ingested``
    was loaded by another route (a run from the command line) and is not new.
    """
    landing_root = Path(landing_root)
    now = time.time() if now is None else now
    scan = LandingScan()
    present = set()
    scan.ignored = [f"{path}: {why}" for path, why in ignored_outside_tables(landing_root)]
    for table in LANDING_TABLES:
        listing = list_table_folder(landing_root / table, landing_root)
        scan.ignored += [f"{path}: {why}" for path, why in listing.ignored]
        for path in listing.temporary:
            scan.settling.append(f"{path.relative_to(landing_root).as_posix()}: temporary name")
        for path in listing.files:
            relative = path.relative_to(landing_root).as_posix()
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed between the listing and now: absent, like a deletion
                continue
            present.add(relative)
            known = cursor.get(relative)
            if known and known[0] == stat.st_size and known[1] == stat.st_mtime:
                scan.cursor[relative] = known
                scan.unchanged += 1
                continue
            age = now - stat.st_mtime
            if age < settle_seconds:
                scan.settling.append(f"{relative}: modified {max(age, 0):.1f} s ago (settle time {settle_seconds:g} s)")
                if known:
                    scan.cursor[relative] = known
                continue
            try:
                digest = file_sha256(path, landing_root)
            except LandingFileRefused as refused:
                scan.ignored.append(f"{relative}: {refused}")
                if known:
                    scan.cursor[relative] = known
                continue
            scan.cursor[relative] = [stat.st_size, stat.st_mtime, digest]
            if known and known[2] == digest:
                scan.unchanged += 1  # touched but same content
                continue
            if (table, digest) in (ingested or set()):
                scan.already_ingested += 1
                continue
            scan.ready.append(LandingFile(table, relative, digest))
    scan.deleted = sorted(set(cursor) - present)
    return scan
