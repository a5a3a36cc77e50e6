"""The forecast explorer in real Chromium (Debian's, driven by Playwright) on the materialized sample: a series
searched by name, its chart drawn (the screenshot holds the actual and forecast colours), its champion shown,
and the question box answering the demo's question with a chart and its SQL. The page fetches nothing from
outside 127.0.0.1."""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from mlops_assets.devtools.processes import free_port, server_answering
from mlops_assets.explorer.app import ACTUAL, FORECAST
from mlops_assets_tests.test_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS_OUT

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
REPO = Path(__file__).resolve().parents[1]
DEMO = "Please show a graphic with sales for product Etorki and the prediction from the model, on a line plot"


def _has_colour(png: bytes, hex_colour: str, at_least: int = 150) -> bool:
    """True when at least ``at_least`` pixels are within a few steps of the colour (an anti-aliased line)."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels - target).sum(axis=2) < 30).sum()) >= at_least


@pytest.fixture(scope="module")
def explorer(materialized_sample, tmp_path_factory):
    data_dir, settings = materialized_sample
    work = tmp_path_factory.mktemp("explorer")
    port = free_port()
    env = {**os.environ, "MLOPS_DATA_DIR": str(data_dir), "MLOPS_SETTINGS": str(settings),
           "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "mlops_assets.explorer.app", "--port", str(port)]
    with server_answering(command, cwd=work, env=env, log_path=work / "explorer.log",
                          ping_url=f"http://127.0.0.1:{port}/", timeout=120):
        yield f"http://127.0.0.1:{port}"


def test_pick_a_series_and_ask_the_demo_question(explorer, tmp_path):
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    outside = []
    expect.set_options(timeout=60_000)  # each callback reads the snapshots: slow on a loaded machine
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        page.set_default_timeout(60_000)
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(
            (explorer, "data:", "blob:")) else None)
        page.goto(explorer)

        page.locator("#series").click()
        page.keyboard.type("etorki 20")  # part of a name, any case
        expect(page.get_by_role("option", name="Etorki 200g (P001)")).to_be_visible()
        page.get_by_role("option", name="Etorki 200g (P001)").click()
        expect(page.locator("#series-chart .gtitle")).to_have_text("Etorki 200g (P001)")
        expect(page.locator("#series-chart .scatterlayer .trace")).to_have_count(4)  # 2 bands, actual, forecast
        expect(page.locator("#champion")).to_contain_text("runner_up")
        expect(page.locator("#model-version")).to_contain_text("Model version 1, registered 20")
        chart = page.locator("#series-chart").screenshot()
        assert _has_colour(chart, ACTUAL) and _has_colour(chart, FORECAST)

        page.locator("#question").fill(DEMO)
        page.locator("#ask").click()
        expect(page.locator("#answer-text")).to_contain_text("Etorki 200g")
        expect(page.locator("#answer-sql")).to_contain_text("FROM serving.sales_overall WHERE brand IN ('Etorki')")
        expect(page.locator("#answer-engine")).to_have_text("engine: offline")
        answer_chart = page.locator("#answer-chart")
        expect(answer_chart).to_be_visible()
        assert _has_colour(answer_chart.screenshot(), ACTUAL)
        page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
        browser.close()
    assert outside == []
    SCREENSHOTS_OUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "explorer.png", SCREENSHOTS_OUT / "explorer.png")
