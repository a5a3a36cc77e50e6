"""A free port, a server started in its own process group, waited for, and stopped with its children."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _restore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_in_own_group(command: list[str], *, cwd: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start ``command`` in a new session (its own process group) with SIGINT restored, output to ``log_path``.

    Started from a non-interactive shell, a child inherits SIGINT as ignored; `dagster dev` maps SIGTERM onto
    SIGINT and then cannot be stopped but by killing each of its processes (STACK.md).
    """
    with log_path.open("wb") as log:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_restore_sigint)


def stop_process_group(process: subprocess.Popen, first: signal.Signals, grace: float = 20.0) -> None:
    """Signal the process group started with ``start_new_session=True``; kill it if it outlives ``grace``."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, first)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _log_tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-3000:] if log_path.exists() else "(no log)"


def wait_until_answers(process: subprocess.Popen, answers: Callable[[], bool], *, what: str, log_path: Path,
                       timeout: float, poll_seconds: float = 0.3) -> None:
    """Return once ``answers()`` holds; raise with the log's end if the process exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}; {log_path}:\n{_log_tail(log_path)}")
        try:
            if answers():
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not answer within {timeout:g} s; {log_path}:\n{_log_tail(log_path)}")
        time.sleep(poll_seconds)


@contextmanager
def server_answering(command: list[str], *, cwd: Path, env: dict[str, str], log_path: Path, ping_url: str,
                     timeout: float = 120.0) -> Iterator[subprocess.Popen]:
    """Yield ``command``'s process once ``ping_url`` answers 200; stop its process group (SIGTERM) afterwards."""
    process = start_in_own_group(command, cwd=cwd, env=env, log_path=log_path)
    try:
        wait_until_answers(process, lambda: requests.get(ping_url, timeout=2).status_code == 200,
                           what=f"the server of {ping_url}", log_path=log_path, timeout=timeout)
        yield process
    finally:
        stop_process_group(process, signal.SIGTERM)
