"""Servers started in their own process group: SIGINT restored, the whole group stopped, a dead server reported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from mlops_assets.devtools.processes import free_port, server_answering, start_in_own_group, stop_process_group

# Ignores SIGTERM and starts a child that ignores it too: only the SIGKILL after the grace stops the group.
STUBBORN = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill 0: only a process that is not one counts as alive.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace_children_included(tmp_path):
    process = start_in_own_group([sys.executable, "-c", STUBBORN], cwd=tmp_path, env=dict(os.environ),
                                 log_path=tmp_path / "stubborn.log")
    deadline = time.monotonic() + 30
    while not (tmp_path / "stubborn.log").read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    child = int((tmp_path / "stubborn.log").read_text())
    started = time.monotonic()
    stop_process_group(process, signal.SIGTERM, grace=1.0)
    assert 1.0 <= time.monotonic() - started < 15
    assert process.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the child outlived its group"
        time.sleep(0.1)


def test_sigint_is_restored_for_a_server_started_from_a_process_that_ignores_it(tmp_path):
    # A parent that ignores SIGINT, as a background job of a non-interactive shell does.
    parent = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from mlops_assets.devtools.processes import start_in_own_group
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        probe = [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT))"]
        start_in_own_group(probe, cwd=Path({str(tmp_path)!r}), env=dict(os.environ),
                           log_path=Path({str(tmp_path / "probe.log")!r})).wait()
        """
    )
    subprocess.run([sys.executable, "-c", parent], check=True, timeout=60)
    assert "default_int_handler" in (tmp_path / "probe.log").read_text()


def test_a_server_that_exits_before_answering_is_reported_with_its_log(tmp_path):
    command = [sys.executable, "-c", "import sys; print('cannot bind: address in use'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match=r"exited with 3(.|\n)*cannot bind: address in use"):
        with server_answering(command, cwd=tmp_path, env=dict(os.environ), log_path=tmp_path / "server.log",
                              ping_url=f"http://127.0.0.1:{free_port()}/ping", timeout=30):
            pass


def test_a_server_answers_and_its_group_is_stopped_afterwards(tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    (tmp_path / "ping").write_text("ok")
    with server_answering(command, cwd=tmp_path, env=dict(os.environ), log_path=tmp_path / "server.log",
                          ping_url=f"http://127.0.0.1:{port}/ping", timeout=30) as process:
        assert process.poll() is None
    assert process.returncode is not None
