"""One run at a time per data directory: an OS file lock held from a run's start to its end.

Two runs writing one data directory at once interleave their read-modify-write steps (history appends,
model registrations) and leave duplicates behind, whatever started them: two `dagster asset materialize`
commands, `make run` beside `make dev`, a test. Every run therefore holds ``<data dir>/.run.lock``
(``fcntl.flock``, so a killed run releases it with its process) and a second run waits for it, up to a
bound, then stops with a message that names the holder. The holder writes who it is into the lock file.

Commands that write what a run writes take it too: `mlops-assets rollback` moves the champion alias that a
run's registration may be moving.

Within one process the lock is counted: the resources of one run each take it, the last release frees it;
another run in the same process (a second thread) waits like another process would.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LOCK_FILE = ".run.lock"
_POLL_SECONDS = 0.2


class DataDirectoryBusy(RuntimeError):
    """Another run held the data directory for longer than this one would wait."""


@dataclass
class _Held:
    fd: int
    owner: str
    count: int


_guard = threading.Lock()
_held: dict[Path, _Held] = {}


def lock_file(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir).resolve() / LOCK_FILE


def holder(data_dir: str | os.PathLike) -> dict | None:
    """Who holds the lock, as its holder wrote it (pid, host, owner, command, since); None when nobody does."""
    path = lock_file(data_dir)
    if not path.exists():
        return None
    with _guard:
        if path in _held:
            return {"pid": os.getpid(), "host": socket.gethostname(), "owner": _held[path].owner}
    fd = _try_lock(path)
    if fd is not None:
        os.close(fd)
        return None
    try:
        return json.loads(path.read_text() or "{}") or {}
    except (OSError, ValueError):
        return {}


def describe(found: dict | None) -> str:
    if not found:
        return "a process that has not yet written its name"
    command = f" ({found['command']})" if found.get("command") else ""
    since = f", since {found['since']}" if found.get("since") else ""
    return f"process {found.get('pid', '?')} on {found.get('host', '?')}{command}, {found.get('owner', '?')}{since}"


def acquire(
    data_dir: str | os.PathLike,
    *,
    owner: str,
    wait_seconds: float,
    on_wait: Callable[[str], None] | None = None,
) -> None:
    """Take the data directory's run lock for ``owner``, waiting up to ``wait_seconds`` for another holder.

    Raises DataDirectoryBusy, naming the holder, when the wait runs out. ``on_wait`` hears once that this
    run waits, and for whom.
    """
    path = lock_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    announced = False
    while True:
        with _guard:
            held = _held.get(path)
            if held is not None and held.owner == owner:
                held.count += 1
                return
            if held is None:
                fd = _try_lock(path)
                if fd is not None:
                    _write_owner(fd, owner)
                    _held[path] = _Held(fd, owner, 1)
                    return
        who = describe(holder(data_dir))
        if time.monotonic() >= deadline:
            pid = (holder(data_dir) or {}).get("pid")
            raise DataDirectoryBusy(
                f"data directory {path.parent} is in use by another run: {who}. This run waited "
                f"{wait_seconds:g} s (setting locks.run_wait_seconds) and stopped before writing anything. "
                f"Let that run finish and start this one again"
                + (f", or stop the other run (kill {pid}) if it is stuck." if pid else ".")
            )
        if not announced and on_wait is not None:
            on_wait(f"data directory {path.parent} is in use by another run ({who}): waiting up to "
                    f"{wait_seconds:g} s for it to finish")
            announced = True
        time.sleep(min(_POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))


def release(data_dir: str | os.PathLike, *, owner: str) -> None:
    """Give back one hold of ``owner``; the last one frees the lock for other runs."""
    path = lock_file(data_dir)
    with _guard:
        held = _held.get(path)
        if held is None or held.owner != owner:
            return
        held.count -= 1
        if held.count:
            return
        del _held[path]
        os.ftruncate(held.fd, 0)
        fcntl.flock(held.fd, fcntl.LOCK_UN)
        os.close(held.fd)


@contextmanager
def held(
    data_dir: str | os.PathLike,
    *,
    owner: str,
    wait_seconds: float,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """The run lock held for a ``with`` block, taken as ``acquire`` takes it."""
    acquire(data_dir, owner=owner, wait_seconds=wait_seconds, on_wait=on_wait)
    try:
        yield
    finally:
        release(data_dir, owner=owner)


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _write_owner(fd: int, owner: str) -> None:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "owner": owner,
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200],
        "since": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
