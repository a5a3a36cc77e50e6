"""The serving app as `make serve` runs it: a real process on a real MLflow registry, a real Prometheus, Chromium.

One server for the module (it takes 10-30 s to start on a 2-core machine), polling the champion alias
every half second. Versions 1 (champion) and 2 (challenger) are registered before it starts.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient
from PIL import Image
from playwright.sync_api import sync_playwright
from prometheus_client.parser import text_string_to_metric_families

import mlops_assets.serving.app as serving_app_module
from mlops_assets.devtools.processes import free_port, server_answering, stop_process_group
from mlops_assets.registry.champion_model import ChampionForecaster
from mlops_assets.registry.model_registry import CHAMPION, register_and_gate, register_champions, rollback
from mlops_assets.serving.inference_log import FILE_NAME
from mlops_assets.serving.limits import CONTENT_TYPES
from mlops_assets.settings import ServingSettings, Settings
from mlops_assets_tests.conftest import materialize_all
from mlops_assets_tests.serving.test_serving import HORIZON, MODELS, SERIES, temporary_tracking, weekly_history

pytestmark = pytest.mark.e2e

NAME = "sales_forecast_app_test"
POLL_SECONDS = 0.5
# The limits come from the settings' serving section, one of them overridden on the command line.
SETTINGS = f"serving: {{poll_seconds: {POLL_SECONDS}, max_body_bytes: 20000, max_rows: 40, max_forecast_rows: 500}}\n"
FLAGS = ["--max-rows", "100"]
START_TIMEOUT_S = 120
CHROMIUM = "/usr/bin/chromium"
PROMETHEUS = "/usr/bin/prometheus"
# For a person to look at (git-ignored), as the Dagster UI test does.
SCREENSHOTS_OUT = Path(__file__).resolve().parents[2] / "benchmarks" / "out" / "screenshots"


@contextmanager
def serving_app(tracking_uri: str, data_dir: Path, port: int) -> Iterator[subprocess.Popen]:
    command = [sys.executable, "-m", "mlops_assets.serving.app", "--model-name", NAME, "--tracking-uri", tracking_uri,
               "--port", str(port), *FLAGS]
    settings = data_dir / "settings.yaml"
    settings.write_text(SETTINGS)
    env = {**os.environ, "MLOPS_DATA_DIR": str(data_dir), "MLOPS_SETTINGS": str(settings),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with server_answering(command, cwd=data_dir, env=env, log_path=data_dir / "server.log",
                          ping_url=f"http://127.0.0.1:{port}/ping", timeout=START_TIMEOUT_S) as process:
        yield process


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    work = tmp_path_factory.mktemp("serving_app")
    data_dir = work / "data"
    data_dir.mkdir()
    with temporary_tracking(work) as (tracking_uri, experiment):
        champions = pd.DataFrame({"unique_id": SERIES, "model": MODELS, "smape": np.linspace(5, 12, len(SERIES))})
        forecaster = ChampionForecaster("W-MON", 52, HORIZON).fit(weekly_history(), champions)
        with mlflow.start_run(experiment_id=experiment):
            register_and_gate(forecaster, champions, champions.assign(mae=1.0), name=NAME, run_id=None,
                              description="app test", tags={}, tolerance=0)
            # Other tags than version 1's: registration is idempotent on the champions and tags.
            register_champions(forecaster, champions, name=NAME, run_id=None, description="app test v2",
                               tags={"purpose": "second version"})
        port = free_port()
        with serving_app(tracking_uri, data_dir, port) as process:
            yield {"base": f"http://127.0.0.1:{port}", "data_dir": data_dir, "process": process, "work": work}


def post(app, body, **headers) -> requests.Response:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return requests.post(f"{app['base']}/invocations", data=data,
                         headers={"Content-Type": "application/json", **headers}, timeout=30)


def metrics(app) -> dict[tuple[str, tuple], float]:
    text = requests.get(f"{app['base']}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def records(*rows: tuple[str, int]) -> dict:
    return {"dataframe_records": [{"unique_id": uid, "h": h} for uid, h in rows]}


def test_answers_like_mlflow_and_says_which_version_answered(app):
    response = post(app, records(("s1", 3), ("s4", 2)), **{"X-Request-Id": "first-request"})
    assert response.status_code == 200, response.text
    predictions = pd.DataFrame(response.json()["predictions"])
    assert predictions[["unique_id", "model_version"]].values.tolist() == [["s1", "1"]] * 3 + [["s4", "1"]] * 2
    assert response.headers["X-Model-Version"] == "1" and response.headers["X-Request-Id"] == "first-request"
    version = requests.get(f"{app['base']}/version", timeout=10).json()
    assert (version["model"], version["model_version"], version["champion_alias_version"]) == (NAME, "1", "1")
    split = {"dataframe_split": {"columns": ["unique_id", "h"], "data": [["s2", 1]]}}
    assert post(app, split).json()["predictions"][0]["unique_id"] == "s2"


OVERSIZED = {
    "body bytes": (records(*[("s" + "1" * 200, 1)] * 100), 413, "more than the limit of 20,000 bytes"),
    "rows": (records(*[("s1", 1)] * 101), 413, "101 rows; the limit is 100 rows"),
    "horizon x series": (records(*[("s1", 13)] * 39), 413, "507 forecast rows"),
    "h true": (records(("s1", True)), 400, "got true in row 0"),
    "h 2**63": (records(("s1", 2**63)), 400, "h=9223372036854775808 in row 0 is beyond the trained horizon of 13"),
    "deep nesting": (b'{"dataframe_records": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nested too deeply"),
}


@pytest.mark.parametrize("case", list(OVERSIZED))
def test_oversized_or_miscast_requests_are_refused_naming_the_limit(app, case):
    body, status, fragment = OVERSIZED[case]
    response = post(app, body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["message"]
    assert response.headers["X-Model-Version"] == "1"
    assert post(app, records(("s0", 1))).status_code == 200


def test_limits_and_poll_come_from_the_settings_and_a_flag_overrides_its_setting(app):
    description = requests.get(f"{app['base']}/openapi.json", timeout=30).json()["info"]["description"]
    assert "Limits per request: 20,000 body bytes, 100 rows, 500 forecast rows" in description
    assert metrics(app)[("serving_alias_poll_interval_seconds", ())] == POLL_SECONDS


def test_flags_override_the_serving_settings_one_by_one():
    settings = Settings.model_validate({"serving": {"port": 6001, "max_rows": 40, "poll_seconds": 2}})
    options = serving_app_module.serving_options(serving_app_module.parse_args(["--max-rows", "100"]), settings)
    assert (options.host, options.port, options.max_rows, options.poll_seconds) == ("127.0.0.1", 6001, 100, 2)
    assert options.max_body_bytes == ServingSettings().max_body_bytes and options.url == "http://127.0.0.1:6001"
    options = serving_app_module.serving_options(serving_app_module.parse_args(["--port", "7002"]), Settings())
    assert (options.port, options.max_rows) == (7002, ServingSettings().max_rows)
    with pytest.raises(ValueError, match="max_rows"):
        serving_app_module.serving_options(serving_app_module.parse_args(["--max-rows", "0"]), settings)
    # How the model is served is not the model: no new version is registered for it.
    assert settings.fingerprint() == Settings().fingerprint()


def test_a_missing_content_type_is_415_not_mlflows_500(app):
    response = requests.post(f"{app['base']}/invocations", data=json.dumps(records(("s0", 1))), timeout=10)
    assert response.status_code == 415 and "Content-Type must be one of" in response.json()["message"]


def test_parquet_and_csv_bodies_are_answered_with_the_content_type_mlflow_takes(app):
    from mlflow.pyfunc import scoring_server

    assert sorted(CONTENT_TYPES) == sorted(scoring_server.CONTENT_TYPES)
    table = pd.DataFrame({"unique_id": ["s1", "s2"], "h": [2, 1]})
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    parquet = post(app, buffer.getvalue(), **{"Content-Type": "application/vnd.apache.parquet"})
    assert parquet.status_code == 200, parquet.text[:300]
    assert [row["unique_id"] for row in parquet.json()["predictions"]] == ["s1", "s1", "s2"]
    csv = post(app, table.to_csv(index=False), **{"Content-Type": "text/csv"})
    assert csv.status_code == 200 and len(csv.json()["predictions"]) == 3, csv.text[:300]
    # MLflow refuses application/x-parquet: the app says which type to send instead of passing it on.
    old = post(app, buffer.getvalue(), **{"Content-Type": "application/x-parquet"})
    assert old.status_code == 415 and "application/vnd.apache.parquet" in old.json()["message"], old.text[:300]
    document = requests.get(f"{app['base']}/openapi.json", timeout=30).json()
    body = document["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert sorted(body) == sorted(CONTENT_TYPES)


def test_metrics_count_what_was_sent(app):
    before = metrics(app)
    for _ in range(3):
        assert post(app, records(("s1", 4), ("s2", 4), ("s1", 2))).status_code == 200
    assert post(app, records(*[("s1", 1)] * 101)).status_code == 413
    assert post(app, records(("s1", True))).status_code == 400
    assert post(app, records(("nope", 1))).status_code == 400
    after = metrics(app)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("serving_requests_total", status="200", error_kind="none") == 3
    assert delta("serving_requests_total", status="413", error_kind="too_many_rows") == 1
    assert delta("serving_requests_total", status="400", error_kind="invalid_request") == 1
    assert delta("serving_requests_total", status="400", error_kind="model_error") == 1
    assert delta("serving_request_duration_seconds_count") == 6
    assert delta("serving_forecast_rows_total") == 3 * 10
    assert delta("serving_series_requested_total") == 3 * 2
    assert after[("serving_model_version", (("model", NAME),))] == 1


def test_an_alias_move_and_a_rollback_are_followed_without_a_failed_request(app):
    seen: list[tuple[int, str, str]] = []
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                response = session.post(f"{app['base']}/invocations", data=json.dumps(records(("s3", 2))),
                                        headers={"Content-Type": "application/json"}, timeout=30)
                answered = response.json()["predictions"][0]["model_version"] if response.ok else response.text
                seen.append((response.status_code, response.headers.get("X-Model-Version"), answered))

    def wait_for(version: str) -> float:
        moved = time.monotonic()
        while time.monotonic() - moved < 60:
            if seen and seen[-1][1] == version:
                return time.monotonic() - moved
            time.sleep(0.05)
        raise AssertionError(f"version {version} never answered; last answers {seen[-3:]}")

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(1)
        MlflowClient().set_registered_model_alias(NAME, CHAMPION, "2")
        to_new = wait_for("2")
        time.sleep(0.5)
        assert rollback(NAME, "1") == "2"
        to_old = wait_for("1")
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert [s for s in seen if s[0] != 200] == []
    assert all(header == body for _, header, body in seen)
    # One swap each way: 1..1 2..2 1..1, never interleaved.
    changes = [v for i, (_, v, _) in enumerate(seen) if i == 0 or seen[i - 1][1] != v]
    assert changes == ["1", "2", "1"], changes
    assert to_new < POLL_SECONDS + 5 and to_old < POLL_SECONDS + 5
    after = metrics(app)
    assert after[("serving_reloads_total", (("result", "success"),))] == 2
    assert after[("serving_champion_alias_version", (("model", NAME),))] == 1


@pytest.mark.browser
def test_docs_render_the_forecast_api_offline_in_chromium(app, tmp_path):
    document = requests.get(f"{app['base']}/openapi.json", timeout=30).json()
    assert document["servers"] == [{"url": app["base"]}]
    assert {"/invocations", "/ping", "/version", "/metrics"} <= set(document["paths"])
    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})

            def only_this_server(route) -> None:
                if route.request.url.startswith(app["base"]):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_this_server)
            page.goto(f"{app['base']}/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            title = page.locator(".title").first.inner_text()
            servers = page.locator(".servers select").first.inner_text()
            shot = page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
        finally:
            browser.close()
    assert outside == []
    assert {"/invocations", "/ping", "/version", "/metrics"} <= {p.replace("\u200b", "") for p in paths}
    assert f"{NAME} (version" in title and app["base"] in servers
    SCREENSHOTS_OUT.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS_OUT / "serving_docs.png").write_bytes(shot)
    image = Image.open(io.BytesIO(shot)).convert("L")
    # A rendered page, not a blank one: many distinct grey levels (text, coloured method badges).
    assert len(set(image.getdata())) > 50


def test_prometheus_scrapes_the_app(app, tmp_path):
    target = app["base"].removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: forecast-serving\n    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    command = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
               f"--web.listen-address=127.0.0.1:{port}"]
    with (tmp_path / "prometheus.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert post(app, records(("s5", 2))).status_code == 200
        served = metrics(app)[("serving_requests_total", (("error_kind", "none"), ("status", "200")))]
        deadline, found = time.monotonic() + 60, None
        while time.monotonic() < deadline and found is None:
            time.sleep(1)
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/api/v1/query", timeout=5, params={
                    "query": 'serving_requests_total{job="forecast-serving",status="200"}'}).json()
            except requests.ConnectionError:
                continue
            found = answer["data"]["result"] or None
        assert found, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert float(found[0]["value"][1]) >= served
        version = requests.get(f"http://127.0.0.1:{port}/api/v1/query", timeout=5,
                               params={"query": "serving_model_version"}).json()["data"]["result"]
        assert version[0]["metric"]["model"] == NAME
    finally:
        stop_process_group(process, signal.SIGTERM)


def test_the_inference_log_reaches_monitoring_serving_requests(app):
    assert post(app, records(("s6", 5)), **{"X-Request-Id": "logged-ok"}).status_code == 200
    assert post(app, records(("nope", 1)), **{"X-Request-Id": "logged-error"}).status_code == 400
    log = app["data_dir"] / "serving" / "logs" / FILE_NAME
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "logged-error" not in log.read_text():
        time.sleep(0.1)
    lines = {line["request_id"]: line for line in map(json.loads, log.read_text().splitlines())}
    ok = lines["logged-ok"]
    assert (ok["series"], ok["h"], ok["status"], ok["forecast_rows"]) == (["s6"], [5], 200, 5)
    assert len(ok["answer"]["predictions"]) == 5 and ok["latency_ms"] > 0
    assert "unknown unique_id 'nope'" in lines["logged-error"]["error"]

    selection = dg.AssetSelection.assets(["monitoring", "serving_requests"]).required_multi_asset_neighbors()
    result = materialize_all(app["data_dir"], selection=selection)
    assert all(c.passed for c in result.get_asset_check_evaluations())
    with duckdb.connect(str(app["data_dir"] / "warehouse.duckdb"), read_only=True) as con:
        table = con.execute("select * from monitoring.serving_requests").df().set_index("request_id")
        served = con.execute("select horizon_step from monitoring.served_forecasts where unique_id = 's6' "
                             "order by horizon_step").df()
    assert table.loc["logged-ok", "status"] == 200 and table.loc["logged-ok", "model_version"] in {"1", "2"}
    assert table.loc["logged-error", "error_kind"] == "model_error"
    assert len(table) == len(lines)
    assert served["horizon_step"].tolist() == [1, 2, 3, 4, 5]


def test_a_scalar_h_beside_a_list_of_ids_is_counted_and_logged_with_its_true_size(app):
    """{"inputs": {"unique_id": [ids], "h": h}}: MLflow repeats h on every row, so the limits count it so."""
    ids = [SERIES[i % len(SERIES)] for i in range(60)]
    over = post(app, {"inputs": {"unique_id": ids, "h": HORIZON}}, **{"X-Request-Id": "scalar-h-over"})
    assert over.status_code == 413 and "780 forecast rows" in over.json()["message"], over.text[:300]
    assert post(app, {"inputs": {"unique_id": ids, "h": [1] * 59}}).status_code == 400
    sizes = {"scalar-h": ({"inputs": {"unique_id": SERIES[:3], "h": 4}}, 12),
             "scalar-h-instances": ({"instances": {"unique_id": SERIES[:2], "h": 5}}, 10),
             "split-form": ({"dataframe_split": {"columns": ["h", "unique_id"], "data": [[2, "s1"]]}}, 2)}
    for request_id, (body, rows) in sizes.items():
        answer = post(app, body, **{"X-Request-Id": request_id})
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == rows, answer.text[:300]
    log = app["data_dir"] / "serving" / "logs" / FILE_NAME
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "split-form" not in log.read_text():
        time.sleep(0.1)
    lines = {line["request_id"]: line for line in map(json.loads, log.read_text().splitlines())}
    for request_id, (_body, rows) in sizes.items():
        line = lines[request_id]
        assert line["forecast_rows"] == len(line["answer"]["predictions"]) == rows == sum(line["h"])
    assert lines["scalar-h"]["series"] == SERIES[:3] and lines["scalar-h"]["h"] == [4, 4, 4]
    assert lines["scalar-h-over"]["status"] == 413


def test_an_unexpected_failure_is_a_counted_and_logged_500(app, monkeypatch, tmp_path):
    """In process, on the module's registry: a fault inside the app (injected) still gets an answer."""

    def broken(*_args, **_kwargs):
        raise RuntimeError("injected fault")

    monkeypatch.setattr(serving_app_module, "check_request", broken)
    config = serving_app_module.ServingConfig(NAME, "http://testserver", tmp_path / "logs", poll_seconds=3600)

    async def call() -> tuple[httpx.Response, str]:
        application = serving_app_module.create_app(config)
        async with application.router.lifespan_context(application):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application),
                                         base_url="http://testserver") as client:
                answer = await client.post("/invocations", json=records(("s0", 1)))
                return answer, (await client.get("/metrics")).text

    response, exported = asyncio.run(call())
    assert response.status_code == 500 and response.json() == {
        "error_code": "INTERNAL_ERROR", "message": "RuntimeError: injected fault"}
    assert 'serving_requests_total{error_kind="server_error",status="500"} 1.0' in exported
    line = json.loads((tmp_path / "logs" / FILE_NAME).read_text())
    assert (line["status"], line["error_kind"]) == (500, "server_error")


def assert_no_server_error_found(base: str, folder: Path) -> None:
    """schemathesis, on the app's own document at ``base``, finds no 500."""
    document = folder / "openapi.json"
    document.write_text(requests.get(f"{base}/openapi.json", timeout=30).text)
    command = [str(Path(sys.executable).parent / "schemathesis"), "run", str(document), "--url", base,
               "--checks", "not_a_server_error", "--max-examples", "20", "--seed", "7", "--workers", "1",
               "--generation-database", "none", "--request-timeout", "30", "--no-color"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=420, cwd=folder)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout or "passed" in result.stdout.lower(), result.stdout[-3000:]


def test_schemathesis_finds_no_server_error_in_the_app(app, tmp_path):
    """The limits parse every body before MLflow does: generated requests must not find a 500 there."""
    assert_no_server_error_found(app["base"], tmp_path)


def test_a_chunked_body_without_a_length_is_cut_at_the_limit(app):
    def chunks():
        yield b'{"dataframe_records": ['
        for _ in range(2_000):
            yield b'{"unique_id": "s1", "h": 1},'
        yield b'{"unique_id": "s1", "h": 1}]}'

    response = requests.post(f"{app['base']}/invocations", data=chunks(), timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert "the request body is longer than the limit of 20,000 bytes" in response.json()["message"]
