"""A real `dagster dev` (webserver and daemon) on a free local port, and its runs watched through GraphQL.

The end-to-end tests and ``benchmarks/automation_latency.py`` drive the product through it exactly as an
operator's `make dev` would: sensors, automation and the run queue all run in the daemon.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from mlops_assets.catalog import SALES_OVERALL
from mlops_assets.devtools.processes import free_port, start_in_own_group, stop_process_group, wait_until_answers

# The checkout these tools run from: its workspace.yaml loads mlops_assets.definitions, its dagster.yaml
# configures the instance (run queue, sensor intervals).
REPO = Path(__file__).resolve().parents[2]
# The end of the chain: once it is refreshed, a new landing file has gone all the way through.
LAST_ASSET = SALES_OVERALL.key
IN_FLIGHT = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}
RUNS_QUERY = """{ runsOrError(limit: 200) { ... on Runs { results {
  runId status startTime endTime creationTime tags { key value } assetSelection { path } } } } }"""
LATEST_QUERY = """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
  assetMaterializations(limit: 1) { timestamp runId } } } }"""


@contextmanager
def dagster_dev(data_dir: Path, *, settings_file: str = "", timeout: float = 180.0, log: Path | None = None,
                workspace: Path = REPO / "workspace.yaml") -> Iterator[str]:
    """Yield the GraphQL URL of a `dagster dev` on 127.0.0.1 with DAGSTER_HOME inside ``data_dir``, once every
    code location is loaded; stop it with SIGINT (a clean shutdown in about 3 s) afterwards."""
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
    command = [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(workspace),
               "-h", "127.0.0.1", "-p", str(port)]
    process = start_in_own_group(command, cwd=REPO, env=env, log_path=log)
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        wait_until_answers(process, lambda: _location_loaded(url), what=f"dagster dev on {url}", log_path=log,
                           timeout=timeout, poll_seconds=1.0)
        yield url
    finally:
        stop_process_group(process, signal.SIGINT, grace=30)


def _location_loaded(url: str) -> bool:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    answer = requests.post(url, json={"query": query}, timeout=10)
    if not answer.ok:
        return False
    statuses = [e["loadStatus"] for e in answer.json()["data"]["workspaceOrError"].get("locationEntries", [])]
    return bool(statuses) and all(s == "LOADED" for s in statuses)


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    """The ``data`` of a GraphQL answer; raises on an HTTP error or on GraphQL errors."""
    answer = requests.post(url, json={"query": query, "variables": variables or {}}, timeout=30)
    answer.raise_for_status()
    body = answer.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


@dataclass
class Run:
    run_id: str
    status: str
    created: float
    start: float | None
    end: float | None
    tags: dict[str, str]
    assets: list[str]


def runs(url: str) -> list[Run]:
    """Every run of the instance (the latest 200), oldest first."""
    found = [
        Run(r["runId"], r["status"], r["creationTime"], r["startTime"], r["endTime"],
            {t["key"]: t["value"] for t in r["tags"]}, ["/".join(a["path"]) for a in r["assetSelection"] or []])
        for r in graphql(url, RUNS_QUERY)["runsOrError"]["results"]
    ]
    return sorted(found, key=lambda r: r.created)


def latest_materialization(url: str, key: list[str]) -> tuple[float, str] | None:
    """(epoch seconds, run id) of the asset's latest materialization; None if it never was."""
    node = graphql(url, LATEST_QUERY, {"key": {"path": key}})["assetOrError"]
    events = node.get("assetMaterializations") or []
    return (int(events[0]["timestamp"]) / 1000, events[0]["runId"]) if events else None


def wait_until(url: str, deadline: float, what: str, done: Callable[[list[Run]], bool]) -> list[Run]:
    """Poll until ``done(runs)`` holds and no run is in flight; raise with the runs seen at the deadline."""
    while True:
        all_runs = runs(url)
        if not any(r.status in IN_FLIGHT for r in all_runs) and done(all_runs):
            return all_runs
        if time.time() > deadline:
            raise TimeoutError(f"{what} before the deadline; runs: {[(r.status, r.assets) for r in all_runs]}")
        time.sleep(2)


def wait_until_refreshed(url: str, after: float, deadline: float, key: list[str] = LAST_ASSET) -> list[Run]:
    """Wait until ``key`` is materialized after ``after`` and no run is in flight; raise at once on a run that
    failed since a minute before ``after``."""

    def refreshed(all_runs: list[Run]) -> bool:
        failed = [(r.run_id, r.assets) for r in all_runs if r.status == "FAILURE" and r.created >= after - 60]
        if failed:
            raise RuntimeError(f"run(s) failed: {failed}; see their logs in the Dagster UI")
        latest = latest_materialization(url, key)
        return latest is not None and latest[0] > after

    return wait_until(url, deadline, f"{'/'.join(key)} not refreshed after {after:.0f}", refreshed)
