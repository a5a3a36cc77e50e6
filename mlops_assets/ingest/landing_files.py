"""Which files of the landing zone are read, in which order, and why every other entry is not.

Layout: ``<landing>/<table>/<file>``, one folder per table. A file is read when its name ends in one of
``READABLE_SUFFIXES``; anything else present (a file at the top, an unknown folder, a subfolder, another
type, a hidden name, a link that leaves the landing zone) is listed with the reason it is not read, so the
sensor and the run logs can say so instead of ignoring it without a word.

Files of one batch are applied in the order they arrived: modification time, then name. A correction
written after the file it corrects wins, whatever the two are called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlops_assets.ingest.reading import READABLE_SUFFIXES, handle_sha256, open_landing_file, readable_suffix
from mlops_assets.settings import LANDING_TABLES

# Writers put a file under a temporary name and rename it when complete; half-written files are skipped.
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
_READ = ", ".join(READABLE_SUFFIXES)


@dataclass
class LandingListing:
    files: list[Path] = field(default_factory=list)  # readable, in arrival order
    temporary: list[Path] = field(default_factory=list)  # still being written under a temporary name
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path relative to the landing root, why)


def file_sha256(path: Path, landing_root: Path | None = None) -> str:
    """SHA-256 of the file opened as a run opens it (``open_landing_file``; LandingFileRefused for a link)."""
    with open_landing_file(path, landing_root) as handle:
        return handle_sha256(handle)


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _arrival(path: Path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, path.name


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def list_table_folder(folder: Path, landing_root: Path | None = None) -> LandingListing:
    """The readable files of one table folder, in arrival order, and what is not read there and why."""
    folder = Path(folder)
    root = Path(landing_root) if landing_root is not None else folder.parent
    listing = LandingListing()
    if not folder.is_dir():
        return listing
    if not _inside(folder, root):
        listing.ignored.append((_relative(folder, root), "a link to a folder outside the landing zone: refused"))
        return listing
    for path in sorted(folder.iterdir()):
        relative, name = _relative(path, root), path.name
        lower = name.lower()
        if path.is_symlink() and not path.exists():
            listing.ignored.append((relative, "a broken symbolic link"))
        elif path.is_symlink() and not _inside(path, root):
            listing.ignored.append((relative, "a symbolic link to a file outside the landing zone: refused"))
        elif path.is_dir():
            listing.ignored.append((relative, f"a subfolder: not read; move its files up into {folder.name}/"))
        elif not path.is_file():
            listing.ignored.append((relative, "not a regular file"))
        elif lower.endswith(TEMP_SUFFIXES) or (name.startswith(".") and readable_suffix(name[1:])):
            listing.temporary.append(path)
        elif name.startswith("."):
            listing.ignored.append((relative, "a hidden name (leading dot): not read"))
        elif readable_suffix(name) is None:
            listing.ignored.append((relative, f"not a landing file type: read are {_READ}"))
        else:
            listing.files.append(path)
    listing.files.sort(key=_arrival)
    return listing


def list_landing_files(folder: Path, landing_root: Path | None = None) -> list[Path]:
    """The readable files of one table folder, in arrival order (modification time, then name)."""
    return list_table_folder(folder, landing_root).files


def ignored_outside_tables(landing_root: Path) -> list[tuple[str, str]]:
    """Entries at the top of the landing zone that are not table folders, with the reason."""
    root = Path(landing_root)
    if not root.is_dir():
        return []
    tables = ", ".join(LANDING_TABLES)
    ignored = []
    for path in sorted(root.iterdir()):
        if path.name in LANDING_TABLES and path.is_dir():
            continue
        if path.is_dir():
            ignored.append((path.name, f"not a table folder (tables: {tables}): its files are not read"))
        else:
            ignored.append((path.name, f"a file at the top of the landing zone: not read; put it in its "
                                       f"table's folder ({tables})"))
    return ignored
