"""End to end on a real `dagster dev`: landing files bring the whole chain up, every run evaluates the contract
checks of what it materializes, a new week ingests only its file, a bad gold table made from it stops the chain
at its blocking check, the fixed one flows on to forecasts one week further, and a failed drift check retrains.

Nothing is launched by hand except the one manual run that fixes gold: the landing sensor starts the raw
runs, the automation sensor the rest, the drift sensor the retraining. The code location is the product's
Definitions with a gold table that the test can make bad on purpose (``faulty_gold``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.definitions import defs
from mlops_assets.defs.automation import RETRAIN_KEYS
from mlops_assets.devtools.dagster_dev import (
    REPO,
    Run,
    dagster_dev,
    graphql,
    latest_materialization,
    runs,
    wait_until,
    wait_until_refreshed,
)
from mlops_assets.sample_data import write_new_week
from mlops_assets.settings import DataPaths
from mlops_assets_tests.dagster_dev import BAD_GOLD_MARKER, faulty_gold_workspace

pytestmark = pytest.mark.e2e

FAST_SETTINGS = "models: [Naive, SeasonalNaive, HistoricAverage, CrostonOptimized, AutoTheta]\n"
# The sample's drift share is 0.2 (one column of five): under the default threshold 0.5 the check passes,
# at the lowest threshold any drifted column fails it.
STRICT_DRIFT = "drift: {threshold: 0.01}\n"
# The sample's last week starts on Monday 2026-09-21: the next one.
NEW_WEEK = date(2026, 9, 28)
GOLD_KEYS = ["gold/sales_data_for_forecast", "gold/series_excluded"]


def _checks_by_asset() -> dict[str, set[str]]:
    found = defaultdict(set)
    for key in defs.resolve_asset_graph().asset_check_keys:
        found[key.asset_key.to_user_string()].add(key.name)
    return found


CHECKS_OF = _checks_by_asset()

RUN_EVENTS_QUERY = """query($runId: ID!) { logsForRun(runId: $runId, limit: 100000) { ... on EventConnection {
  events { __typename ... on MaterializationEvent { assetKey { path } }
    ... on AssetCheckEvaluationEvent { evaluation { assetKey { path } checkName success } } } } } }"""


def run_events(url: str, run_id: str) -> tuple[set[str], dict[str, bool]]:
    """What a run did: the assets it materialized, and each check it evaluated ("asset:check") with its result."""
    events = graphql(url, RUN_EVENTS_QUERY, {"runId": run_id})["logsForRun"]["events"]
    materialized = {"/".join(e["assetKey"]["path"]) for e in events if e["__typename"] == "MaterializationEvent"}
    checks = {
        f"{'/'.join(e['evaluation']['assetKey']['path'])}:{e['evaluation']['checkName']}": e["evaluation"]["success"]
        for e in events
        if e["__typename"] == "AssetCheckEvaluationEvent"
    }
    return materialized, checks


def assert_every_check_ran(url: str, run_list: list[Run]) -> None:
    """Each run evaluated every check of every asset it materialized: none is left "Not evaluated"."""
    assert run_list
    for run in run_list:
        materialized, checks = run_events(url, run.run_id)
        expected = {f"{asset}:{name}" for asset in materialized for name in CHECKS_OF[asset]}
        missing = sorted(expected - set(checks))
        trigger = run.tags.get("mlops/trigger", "automation")
        assert not missing, f"run {run.run_id} ({trigger}) left {missing} unevaluated"


def drop_week(landing: Path, week_start: date) -> Path:
    """A writer's drop: written under a temporary name, renamed when complete (write_new_week does both)."""
    return write_new_week(landing, week_start, seed=7, n_products=20, n_customers=8)


def sales_overall(data_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(DataPaths(data_dir).exports / "serving" / "sales_overall.parquet")


@pytest.fixture(scope="module")
def deployment(small_sample, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("e2e_automation")
    shutil.copytree(small_sample / "landing", data_dir / "landing")
    settings = data_dir / "settings.yaml"
    settings.write_text(FAST_SETTINGS)
    workspace = faulty_gold_workspace(data_dir / "workspace.yaml", REPO)
    with dagster_dev(data_dir, settings_file=str(settings), workspace=workspace) as url:
        yield data_dir, url


def test_landing_files_bring_the_whole_chain_up(deployment):
    data_dir, url = deployment
    started = time.time()
    deadline = started + 8 * 60
    first = wait_until_refreshed(url, after=0, deadline=deadline)
    raw_runs = [r for r in first if r.tags.get("mlops/trigger") == "landing_file"]
    assert sorted(a for r in raw_runs for a in r.assets) == [
        "raw/customers", "raw/products", "raw/promotions", "raw/sales_orders", "raw/series"
    ]
    assert all(r.status == "SUCCESS" for r in first)
    # Sensor runs and automation runs alike: every contract check of every materialized asset ran.
    assert_every_check_ran(url, first)
    automation_runs = [r for r in first if r.tags.get("dagster/sensor_name") == "automation_sensor"]
    assert any("gold/sales_data_for_forecast" in r.assets for r in automation_runs)
    assert not [r for r in first if r.tags.get("mlops/trigger") == "drift"], "drift share 0.2 is under 0.5"
    overall = sales_overall(data_dir)
    assert overall.loc[overall["origin"] == "Train", "ds"].max() == pd.Timestamp("2026-09-21")
    assert time.time() - started < 8 * 60


def test_a_new_week_with_a_bad_gold_table_stops_the_chain_and_the_fixed_one_flows_on_and_drift_retrains(deployment):
    data_dir, url = deployment
    deadline = time.time() + 10 * 60
    wait_until_refreshed(url, after=0, deadline=deadline)
    forecasts_before = latest_materialization(url, ["forecasting", "forecasts"])

    # A new week arrives while gold is broken: its blocking check fails and nothing below gold runs.
    (data_dir / BAD_GOLD_MARKER).touch()
    dropped = time.time()
    drop_week(data_dir / "landing", NEW_WEEK)
    stopped = wait_until(
        url, deadline, "no automation run of gold after the bad week",
        lambda all_runs: any(r.created >= dropped and "gold/sales_data_for_forecast" in r.assets for r in all_runs),
    )
    # The landing sensor ingests the new file only: one run of its table.
    landed = [r for r in stopped if r.created >= dropped and r.tags.get("mlops/trigger") == "landing_file"]
    assert [r.assets for r in landed] == [["raw/sales_orders"]] and landed[0].status == "SUCCESS"
    assert_every_check_ran(url, landed)
    gold_run = next(r for r in stopped if r.created >= dropped and "gold/sales_data_for_forecast" in r.assets)
    materialized, checks = run_events(url, gold_run.run_id)
    assert checks["gold/sales_data_for_forecast:matches_contract"] is False
    assert materialized == set(GOLD_KEYS), f"only gold may be written past a failed gold check: {materialized}"
    assert gold_run.status == "FAILURE"
    # The chain waits (three sensor ticks): no run starts below the failed check.
    time.sleep(16)
    assert [r.run_id for r in runs(url) if r.created >= dropped] == [
        r.run_id for r in stopped if r.created >= dropped
    ]
    assert latest_materialization(url, ["forecasting", "forecasts"]) == forecasts_before

    # The fix, by hand as an operator would: gold again (its checks pass in the manual run), and the chain
    # below follows on its own. The operator also tightens the drift threshold: the drift check fails on the
    # fresh report and the drift sensor retrains.
    (data_dir / BAD_GOLD_MARKER).unlink()
    (data_dir / "settings.yaml").write_text(FAST_SETTINGS + STRICT_DRIFT)
    fixed = time.time()
    manual = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "mlops_assets.definitions",
         "--select", ",".join(GOLD_KEYS)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(data_dir / "dagster_home"), "MLOPS_DATA_DIR": str(data_dir),
             "MLOPS_SETTINGS": str(data_dir / "settings.yaml"), "DAGSTER_DISABLE_TELEMETRY": "1"},
    )
    assert manual.returncode == 0, manual.stderr[-3000:]

    # Done when the retraining has run; the refresh it sets off below the forecasts is not part of this test.
    after = wait_until(
        url, deadline, "no retraining on drift after the fix",
        lambda all_runs: any(r.created >= fixed and r.tags.get("mlops/trigger") == "drift" for r in all_runs),
    )
    new_runs = [r for r in after if r.created >= fixed]
    assert all(r.status == "SUCCESS" for r in new_runs), [(r.status, r.assets) for r in new_runs]
    manual_run = next(r for r in new_runs if not r.tags.get("dagster/sensor_name"))
    assert sorted(manual_run.assets) == GOLD_KEYS
    assert_every_check_ran(url, new_runs)
    assert run_events(url, manual_run.run_id)[1]["gold/sales_data_for_forecast:matches_contract"] is True

    drift_runs = [r for r in new_runs if r.tags.get("mlops/trigger") == "drift"]
    assert len(drift_runs) == 1 and sorted(drift_runs[0].assets) == sorted(k.to_user_string() for k in RETRAIN_KEYS)
    assert "> threshold 0.01" in drift_runs[0].tags["mlops/reason"]
    drift_check_run = drift_runs[0].tags["mlops/drift_check_run"]
    assert run_events(url, drift_check_run)[1]["monitoring/drift_report:drift_within_threshold"] is False
    # Automation may refresh the chain in one run or in two; whichever run failed the drift check evaluated
    # every check of what it materialized.
    assert_every_check_ran(url, [r for r in after if r.run_id == drift_check_run])
    # The refresh of sales_overall may come in a run after the retraining (a later sensor tick): wait for it.
    def trained_to_new_week(_runs) -> bool:
        overall = sales_overall(data_dir)
        return overall.loc[overall["origin"] == "Train", "ds"].max() == pd.Timestamp(NEW_WEEK)

    wait_until(url, deadline, f"sales_overall not trained up to {NEW_WEEK}", trained_to_new_week)
    since_fix = [r for r in runs(url) if r.created >= fixed]
    assert all(r.status == "SUCCESS" for r in since_fix)
    # The new week went all the way down, every check of every run evaluated, the forecasts a week further.
    assert {"gold/sales_data_for_forecast", "forecasting/backtest_forecasts", "registry/sales_forecast_model",
            "forecasting/forecasts", "serving/sales_overall"} <= {a for r in since_fix for a in r.assets}
    assert_every_check_ran(url, since_fix)
    overall = sales_overall(data_dir)
    assert overall.loc[overall["origin"] == "Predict", "ds"].min() == pd.Timestamp(NEW_WEEK) + pd.Timedelta(weeks=1)
