"""The Dagster UI in a real browser: Debian's Chromium, driven by Playwright, against a real `dagster dev`.

The test opens the global asset lineage and the asset catalog, checks that every asset of ``defs`` is
listed, clicks "Materialize all", and waits for that run to succeed. The product's sensors start RUNNING
and would launch runs of their own from the landing files: the landing zone stays empty until they are
stopped through GraphQL, so the only run is the one the browser launched. Screenshots go to the pytest
folder and to benchmarks/out/screenshots/ (git-ignored) for a person to look at.

Playwright's own browser download is not reachable here: launch Debian's /usr/bin/chromium instead
(`make test` installs it with apt when missing, or names the command to run).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from mlops_assets.definitions import defs
from mlops_assets.devtools.dagster_dev import REPO, dagster_dev, graphql
from mlops_assets_tests.conftest import FAST_ZOO

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
RUN_TIMEOUT_SECONDS = 360
SCREENSHOTS_OUT = REPO / "benchmarks" / "out" / "screenshots"

SENSORS = """{ sensorsOrError(repositorySelector: {repositoryLocationName: "mlops_assets",
  repositoryName: "__repository__"}) { ... on Sensors { results { name jobOriginId
  sensorState { selectorId status ticks(limit: 1) { status } } } } ... on PythonError { message } } }"""
STOP_SENSOR = """mutation($origin: String, $selector: String) { stopSensor(jobOriginId: $origin,
  jobSelectorId: $selector) { ... on StopSensorMutationResult { instigationState { status } }
  ... on PythonError { message } } }"""
RUNS = """{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }"""
RUN_STEPS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status assetMaterializations {
  assetKey { path } } } } }"""


def _stop_sensors(url: str) -> list[str]:
    sensors = graphql(url, SENSORS)["sensorsOrError"]["results"]
    for sensor in sensors:
        answer = graphql(url, STOP_SENSOR, {"origin": sensor["jobOriginId"],
                                            "selector": sensor["sensorState"]["selectorId"]})["stopSensor"]
        assert answer.get("instigationState", {}).get("status") == "STOPPED", (sensor["name"], answer)
    # A tick the daemon began before the stop still finishes, and may launch runs for data that arrives
    # meanwhile (seen on a loaded CI machine): wait until no tick is in flight.
    deadline = time.monotonic() + 180
    while True:
        states = graphql(url, SENSORS)["sensorsOrError"]["results"]
        in_flight = [s["name"] for s in states if any(t["status"] == "STARTED" for t in s["sensorState"]["ticks"])]
        if not in_flight:
            break
        assert time.monotonic() < deadline, f"sensor ticks still running 180 s after the stop: {in_flight}"
        time.sleep(1)
    return sorted(s["name"] for s in sensors)


def _runs(url: str) -> dict[str, str]:
    return {r["runId"]: r["status"] for r in graphql(url, RUNS)["runsOrError"]["results"]}


def _dismiss_welcome(page) -> None:
    """A first visit shows a 'Join the Dagster community' dialog over the page; skip it."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=5_000)
    except Exception:  # the dialog is optional: nothing to dismiss
        return
    skip.click()
    skip.wait_for(state="hidden", timeout=10_000)


def _expand_all_groups(page) -> None:
    """The lineage opens with each group folded into one box: unfold them (the canvas's right-click menu)."""
    page.mouse.click(700, 1300, button="right")  # an empty spot of the canvas, below the graph
    expand, collapse = (page.get_by_role("menuitem", name=f"{verb} all groups") for verb in ("Expand", "Collapse"))
    expect(expand.or_(collapse)).to_be_visible()
    if expand.is_visible():
        expand.click()
    else:  # the UI remembers the choice: they are unfolded already
        page.keyboard.press("Escape")
    time.sleep(3)  # the canvas animates to its new layout


def _shoot(page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_materialize_all_from_the_asset_graph_in_chromium(small_sample, tmp_path):
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)"
    data_dir, shots = tmp_path / "data", tmp_path / "screenshots"
    (data_dir / "landing").mkdir(parents=True)
    shots.mkdir()
    settings = tmp_path / "settings.yaml"
    settings.write_text(FAST_ZOO)
    expected = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    groups = {key.split("/")[0] for key in expected}

    with dagster_dev(data_dir, settings_file=str(settings)) as url:
        base = url.removesuffix("/graphql")
        assert _stop_sensors(url) == sorted(sensor.name for sensor in defs.sensors)
        # Only now the data arrives: no sensor is left to turn it into runs of its own.
        shutil.copytree(small_sample / "landing", data_dir / "landing", dirs_exist_ok=True)
        assert _runs(url) == {}

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            page.set_default_timeout(60_000)

            # The catalog lists every asset as a link to /assets/<key>: the names in the rows are truncated.
            # Tall enough that the catalog, a virtualized list, renders every asset row at once.
            page.set_viewport_size({"width": 1600, "height": 2600})
            page.goto(f"{base}/assets")
            _dismiss_welcome(page)
            links = page.locator("a[href^='/assets/']")
            expect(links.first).to_be_visible()
            page.wait_for_function(
                "n => new Set([...document.querySelectorAll(\"a[href^='/assets/']\")]"
                ".map(a => a.getAttribute('href'))).size >= n", arg=len(expected), timeout=60_000,
            )
            hrefs = links.evaluate_all("as => as.map(a => a.getAttribute('href'))")
            hrefs = {href.removeprefix("/assets/") for href in hrefs}
            assert expected <= hrefs, sorted(expected - hrefs)
            _shoot(page, shots, "1_asset_catalog")
            page.set_viewport_size({"width": 1600, "height": 1400})

            page.goto(f"{base}/asset-groups")
            _dismiss_welcome(page)
            for group in sorted(groups):
                expect(page.get_by_text(group, exact=True).first).to_be_visible()
            _expand_all_groups(page)
            materialize_all = page.get_by_role("button", name="Materialize all")
            expect(materialize_all).to_be_enabled()
            _shoot(page, shots, "2_asset_graph_before")

            materialize_all.click()
            launched = _wait_for_new_run(url, page, shots)
            run = _wait_for_success(url, launched, RUN_TIMEOUT_SECONDS)

            page.goto(f"{base}/runs/{launched}")
            expect(page.get_by_text("Success").first).to_be_visible(timeout=60_000)
            time.sleep(2)
            _shoot(page, shots, "3_run_succeeded")
            page.goto(f"{base}/asset-groups")
            _dismiss_welcome(page)
            expect(page.get_by_role("button", name="Materialize all")).to_be_visible()
            _expand_all_groups(page)
            _shoot(page, shots, "4_asset_graph_after")
            browser.close()

        assert set(_runs(url)) == {launched}, "a run other than the browser's was started"

    materialized = {"/".join(m["assetKey"]["path"]) for m in run["assetMaterializations"]}
    assert materialized == expected
    SCREENSHOTS_OUT.mkdir(parents=True, exist_ok=True)
    for png in sorted(shots.glob("*.png")):
        assert png.stat().st_size > 10_000, f"{png} looks empty"
        shutil.copy(png, SCREENSHOTS_OUT / png.name)


def _wait_for_new_run(url: str, page, shots: Path, timeout: float = 60) -> str:
    """The run the click launched; a confirmation dialog, if the UI shows one, is accepted first."""
    deadline = time.monotonic() + timeout
    confirmed = False
    while time.monotonic() < deadline:
        runs = _runs(url)
        if runs:
            time.sleep(2)  # a second run launched by the same click would show by now
            found = graphql(url, RUNS)["runsOrError"]["results"]
            launchers = {r["runId"]: {t["key"]: t["value"] for t in r["tags"] if t["key"].startswith("dagster/")}
                         for r in found}
            assert len(found) == 1, launchers
            return found[0]["runId"]
        dialog = page.get_by_role("dialog")
        # Once only: on a loaded machine the dialog stays up while the launch is in flight, and a second
        # click would launch a second run.
        if not confirmed and dialog.count() and dialog.first.is_visible():
            _shoot(page, shots, "2b_launch_dialog")
            confirm = dialog.get_by_role("button", name="Launch").or_(dialog.get_by_role("button", name="Materialize"))
            confirm.first.click()
            confirmed = True
        time.sleep(1)
    _shoot(page, shots, "error_no_run")
    raise AssertionError(f"no run appeared within {timeout} s of clicking 'Materialize all'")


def _wait_for_success(url: str, run_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = graphql(url, RUN_STEPS, {"id": run_id})["runOrError"]
        if run["status"] == "SUCCESS":
            return run
        assert run["status"] not in ("FAILURE", "CANCELED"), f"run {run_id} ended {run['status']}"
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']} after {timeout} s"
        time.sleep(3)
