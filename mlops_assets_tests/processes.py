"""Local servers the tests and benchmarks start themselves: a free port, and a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys


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
