"""Local servers the tests and benchmarks start themselves: a free port, and a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def python_ready(code: str, *args: str) -> subprocess.Popen:
    """Run ``python -c code args`` and return once it prints ``ready`` (it then holds what it took)."""
    process = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip()
    if line != "ready":
        process.kill()
        raise RuntimeError(f"helper process did not get ready: {line!r}, exit code {process.wait()}")
    return process


@contextmanager
def server_answering(command: list[str], *, cwd: Path, env: dict[str, str], log_path: Path, ping_url: str,
                     timeout: float = 120.0) -> Iterator[subprocess.Popen]:
    """Start ``command`` in its own process group, logging to ``log_path``; yield it once ``ping_url`` answers 200,
    stop the group afterwards. Fails with the log's end if the server exits or never answers."""
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            started = time.monotonic()
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    if requests.get(ping_url, timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() - started > timeout:
                    raise AssertionError(f"no answer at {ping_url} after {timeout} s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.3)
            yield process
        finally:
            stop_process_group(process, signal.SIGTERM)
