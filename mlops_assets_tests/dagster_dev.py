"""Start and stop a real `dagster dev` (webserver and daemon) for tests, on a free local port.

Started with SIGINT restored and in its own session: a background `dagster dev` otherwise ignores SIGINT
and can only be killed process by process (STACK.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from mlops_assets_tests.processes import free_port, stop_process_group

REPO = Path(__file__).resolve().parents[1]
# While this file exists in the data directory, the faulty_gold code location writes a bad gold table.
BAD_GOLD_MARKER = "make_gold_bad"


def faulty_gold_workspace(path: Path, repo: Path) -> Path:
    """A workspace.yaml that loads ``mlops_assets_tests.faulty_gold`` in place of ``mlops_assets.definitions``."""
    path.write_text(
        "load_from:\n  - python_module:\n      module_name: mlops_assets_tests.faulty_gold\n"
        f"      location_name: mlops_assets\n      working_directory: {repo}\n"
    )
    return path


def _restore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def dagster_dev(data_dir: Path, *, settings_file: str = "", timeout: float = 180.0, log: Path | None = None,
                workspace: Path = REPO / "workspace.yaml"):
    """Yield the GraphQL URL of a `dagster dev` on 127.0.0.1 with DAGSTER_HOME inside ``data_dir``."""
    home = data_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MLOPS_DATA_DIR": str(data_dir),
        "MLOPS_SETTINGS": settings_file,
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    log = log or data_dir / "dagster_dev.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(workspace),
             "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_restore_sigint,
        )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {process.returncode}; see {log}")
            try:
                answer = requests.post(url, json={"query": "{ version }"}, timeout=5)
                if answer.ok and _location_loaded(url):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"dagster dev did not answer on {url} within {timeout} s; see {log}")
            time.sleep(1)
        yield url
    finally:
        stop_process_group(process, signal.SIGINT, grace=30)


def _location_loaded(url: str) -> bool:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    entries = requests.post(url, json={"query": query}, timeout=10).json()["data"]["workspaceOrError"]
    statuses = [e["loadStatus"] for e in entries.get("locationEntries", [])]
    return bool(statuses) and all(s == "LOADED" for s in statuses)


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    answer = requests.post(url, json={"query": query, "variables": variables or {}}, timeout=30)
    answer.raise_for_status()
    body = answer.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]
