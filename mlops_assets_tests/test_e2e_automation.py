"""End to end on a real `dagster dev`: landing files bring the whole chain up, a new week refreshes it.

Nothing is launched by hand: the landing sensor starts the raw runs, the automation sensor the rest.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.sample_data import write_new_week
from mlops_assets.settings import DataPaths
from mlops_assets_tests.dagster_dev import dagster_dev, graphql

pytestmark = pytest.mark.e2e

FAST_SETTINGS = "models: [Naive, SeasonalNaive, HistoricAverage, CrostonOptimized, AutoTheta]\n"
LAST_ASSET = ["serving", "sales_overall"]
NEW_WEEK = date(2026, 9, 28)
IN_FLIGHT = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}

RUNS_QUERY = """{ runsOrError(limit: 200) { ... on Runs { results {
  runId status startTime endTime creationTime tags { key value } assetSelection { path } } } } }"""
LATEST_QUERY = """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
  assetMaterializations(limit: 1) { timestamp runId } } } }"""


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
    """Every run of the instance, oldest first."""
    found = [
        Run(r["runId"], r["status"], r["creationTime"], r["startTime"], r["endTime"],
            {t["key"]: t["value"] for t in r["tags"]}, ["/".join(a["path"]) for a in r["assetSelection"] or []])
        for r in graphql(url, RUNS_QUERY)["runsOrError"]["results"]
    ]
    return sorted(found, key=lambda r: r.created)


def latest_materialization(url: str, key: list[str]) -> float | None:
    """Epoch seconds of the asset's latest materialization, None if it never was."""
    node = graphql(url, LATEST_QUERY, {"key": {"path": key}})["assetOrError"]
    events = node.get("assetMaterializations") or []
    return int(events[0]["timestamp"]) / 1000 if events else None


def wait_until_refreshed(url: str, after: float, deadline: float, key: list[str] = LAST_ASSET) -> list[Run]:
    """Wait until ``key`` is materialized after ``after`` and no run is in flight; fail fast on a failed run."""
    while True:
        all_runs = runs(url)
        failed = [r for r in all_runs if r.status == "FAILURE" and r.created >= after - 60]
        assert not failed, f"run(s) failed: {[(r.run_id, r.assets) for r in failed]}; see the Dagster UI logs"
        latest = latest_materialization(url, key)
        if latest is not None and latest > after and not any(r.status in IN_FLIGHT for r in all_runs):
            return all_runs
        assert time.time() < deadline, (
            f"{'/'.join(key)} not refreshed after {after:.0f} before the deadline; runs: "
            f"{[(r.status, r.assets) for r in all_runs]}"
        )
        time.sleep(2)


def drop_new_week(landing: Path, week_start: date) -> Path:
    """A writer's drop: written under a temporary name, renamed when complete (write_new_week does both)."""
    return write_new_week(landing, week_start, seed=7, n_products=20, n_customers=8)


@pytest.fixture(scope="module")
def deployment(small_sample, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("e2e_automation")
    shutil.copytree(small_sample / "landing", data_dir / "landing")
    settings = data_dir / "settings.yaml"
    settings.write_text(FAST_SETTINGS)
    with dagster_dev(data_dir, settings_file=str(settings)) as url:
        yield data_dir, url


def test_landing_files_bring_the_whole_chain_up_and_a_new_week_refreshes_it(deployment):
    data_dir, url = deployment
    started = time.time()
    deadline = started + 8 * 60
    first = wait_until_refreshed(url, after=0, deadline=deadline)
    raw_runs = [r for r in first if r.tags.get("mlops/trigger") == "landing_file"]
    assert sorted(a for r in raw_runs for a in r.assets) == [
        "raw/customers", "raw/products", "raw/promotions", "raw/sales_orders", "raw/series"
    ]
    assert all(r.status == "SUCCESS" for r in first)
    overall_path = DataPaths(data_dir).exports / "serving" / "sales_overall.parquet"
    overall = pd.read_parquet(overall_path)
    assert overall.loc[overall["origin"] == "Train", "ds"].max() == pd.Timestamp("2026-09-21")

    dropped = time.time()
    drop_new_week(data_dir / "landing", NEW_WEEK)
    after = wait_until_refreshed(url, after=dropped, deadline=deadline)

    new_runs = [r for r in after if r.created >= dropped]
    assert new_runs and all(r.status == "SUCCESS" for r in new_runs)
    assert [r.assets for r in new_runs if r.tags.get("mlops/trigger") == "landing_file"] == [["raw/sales_orders"]]
    refreshed = {a for r in new_runs for a in r.assets}
    assert {"gold/sales_data_for_forecast", "forecasting/backtest_forecasts", "registry/sales_forecast_model",
            "forecasting/forecasts", "serving/sales_overall"} <= refreshed
    overall = pd.read_parquet(overall_path)
    train, predict = overall[overall["origin"] == "Train"], overall[overall["origin"] == "Predict"]
    assert train["ds"].max() == pd.Timestamp(NEW_WEEK)
    assert predict["ds"].min() == pd.Timestamp(NEW_WEEK) + pd.Timedelta(weeks=1)
    assert time.time() - started < 8 * 60
