"""The forecast endpoint: MLflow's own scoring server, following the champion alias, measured and logged.

Each version is served by the FastAPI app of ``mlflow.pyfunc.scoring_server.init(model)``, so the request
and answer formats are exactly those of ``mlflow models serve``. This outer app routes ``/invocations``,
``/ping`` and ``/health`` to the version that answers now, and adds:

- the champion alias followed (``alias_watch``): a new version is loaded beside the old one and swapped in
  with one assignment; a request keeps the version it started with, so none fails during a swap;
- ``/version`` and an ``X-Model-Version`` header on every answer;
- with a hierarchy declared, the levels' model followed too (its own champion alias): a request's level ids
  are answered by it, its series by the series' model (``routing``), and every answer row says its level;
- bounded requests (``limits``), refused with a 413 or 400 that names the limit before MLflow parses them;
- Prometheus metrics at ``/metrics`` and one inference-log line per request (``inference_log``);
- Swagger UI at ``/docs`` of the product's OpenAPI document (``/openapi.json``), offline.

    python -m mlops_assets.serving.app               # what `make serve` runs: the settings' serving section
    python -m mlops_assets.serving.app --port 5002   # a flag overrides its setting
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import re
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from mlflow.pyfunc import scoring_server
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mlops_assets.registry.level_model import levels_model_name
from mlops_assets.registry.model_registry import CHAMPION, alias_version
from mlops_assets.serving.alias_watch import AliasWatch
from mlops_assets.serving.docs import STATIC_FOLDER, served_document, swagger_page
from mlops_assets.serving.inference_log import InferenceLog
from mlops_assets.serving.limits import (
    CONTENT_TYPES,
    RequestLimits,
    RequestRefused,
    RequestSummary,
    body_limit_message,
    check_request,
    media_type,
    too_large,
)
from mlops_assets.serving.metrics import ServingMetrics
from mlops_assets.serving.routing import RoutedModel
from mlops_assets.settings import DataPaths, ServingSettings, Settings, load_settings

log = logging.getLogger("mlops_assets.serving")
_REQUEST_ID = re.compile(r"^[\w.-]{1,64}$")
# The keys an ASGI HTTP scope defines; the outer app's routing keys must not leak into MLflow's app.
_SCOPE_KEYS = ("type", "asgi", "http_version", "method", "scheme", "path", "raw_path", "root_path",
               "query_string", "headers", "client", "server", "extensions")


@dataclass(frozen=True)
class Served:
    """One registered version, loaded, with the MLflow scoring app that answers for it."""

    version: str
    app: Any
    horizon: int
    # Steps beyond h that a series behind the others is answered with (forecasting.common_end): the most of
    # any series, so that the request limits count every row the answer can hold.
    extra_steps: int = 0
    loaded_at: float = field(default_factory=time.time)
    # The levels' model version answering level ids beside this one (None: series only, no level column).
    levels_version: str | None = None


@dataclass
class ServingConfig:
    model_name: str
    server_url: str
    log_folder: Path
    limits: RequestLimits = field(default_factory=RequestLimits)
    poll_seconds: float = 10.0
    # Set when the settings declare a hierarchy: the levels' registered model, followed beside the series'.
    levels_model_name: str | None = None


def load_version(model_name: str, version: str, levels_name: str | None = None,
                 levels_version: str | None = None) -> Served:
    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    forecaster = model.unwrap_python_model().forecaster
    series = forecaster.series
    extra = int(series["behind"].max()) if "behind" in series.columns and len(series) else 0
    if levels_name is not None and levels_version is not None:
        levels = mlflow.pyfunc.load_model(f"models:/{levels_name}/{levels_version}")
        model = RoutedModel(model, levels)
    return Served(version=version, app=scoring_server.init(model), horizon=int(forecaster.horizon),
                  extra_steps=extra, levels_version=levels_version)


async def _forward(app: Any, scope: dict, body: bytes) -> tuple[int, bytes, str]:
    """Call an ASGI app with a body already read; returns (status, body, content type)."""
    inner = {k: scope[k] for k in _SCOPE_KEYS if k in scope}
    answer: dict[str, Any] = {"status": 500, "body": [], "type": "application/json"}
    finished = asyncio.Event()
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()  # a client that stays connected until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            headers = dict(message.get("headers", []))
            answer["type"] = headers.get(b"content-type", b"application/json").decode()
        elif message["type"] == "http.response.body":
            answer["body"].append(message.get("body", b""))
            if not message.get("more_body"):
                finished.set()

    await app(inner, receive, send)
    finished.set()
    return answer["status"], b"".join(answer["body"]), answer["type"]


async def _read_body(request: Request, limits: RequestLimits) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise too_large(body_limit_message(int(declared), limits), "body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise too_large(body_limit_message(None, limits), "body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _error_kind(status: int) -> str:
    return {200: "none", 400: "model_error", 415: "unsupported_media_type", 504: "timeout"}.get(
        status, "server_error" if status >= 500 else f"http_{status}"
    )


def _error_message(status: int, body: bytes) -> str | None:
    if status == 200:
        return None
    text = body.decode(errors="replace")
    try:
        text = json.loads(text).get("message", text)
    except (ValueError, AttributeError):
        pass
    return text[:1000]


def create_app(config: ServingConfig) -> FastAPI:
    """The serving app for the current champion of `config.model_name` (MLflow's tracking URI already set)."""
    first = alias_version(config.model_name, CHAMPION)
    if first is None:
        raise SystemExit(
            f"registered model {config.model_name!r} has no '{CHAMPION}' alias: run `make run` (or materialize "
            "registry/sales_forecast_model) first"
        )
    metrics = ServingMetrics(config.model_name, config.poll_seconds)

    def aliases() -> tuple[str, str | None] | None:
        """The champions to serve: the series' version and the levels' (None without levels)."""
        series = alias_version(config.model_name, CHAMPION)
        levels = config.levels_model_name and alias_version(config.levels_model_name, CHAMPION)
        return None if series is None else (series, levels or None)

    first_levels = aliases()[1]
    try:
        state = {"served": load_version(config.model_name, first, config.levels_model_name, first_levels)}
    except Exception as error:  # noqa: BLE001 - the series are still served; the watch retries the levels
        if first_levels is None:
            raise
        log.error(f"{config.levels_model_name} version {first_levels} failed to load ({error}): serving "
                  f"{config.model_name} version {first} without level ids until it loads")
        state = {"served": load_version(config.model_name, first)}
    metrics.served(first, reloaded=False)
    metrics.polled(first)
    documents: dict[tuple[str, str | None], dict] = {}
    inference_log = InferenceLog(config.log_folder)

    def serve_version(versions: tuple[str, str | None]) -> None:
        state["served"] = load_version(config.model_name, versions[0], config.levels_model_name, versions[1])
        metrics.served(versions[0], reloaded=True)

    def watch_error(what: str, _error: Exception) -> None:
        if what == "load":
            metrics.reloads.labels("failure").inc()
        else:
            metrics.poll_errors.inc()

    watch = AliasWatch(
        aliases,
        serve_version,
        lambda: (state["served"].version, state["served"].levels_version),
        poll_seconds=config.poll_seconds,
        on_poll=lambda versions: metrics.polled(versions[0]),
        on_error=watch_error,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        watch.start()
        log.info(
            f"serving {config.model_name} version {first} at {config.server_url} (Swagger UI /docs, metrics "
            f"/metrics); following alias {CHAMPION} every {config.poll_seconds:g} s; inference log "
            f"{inference_log.path}"
        )
        try:
            yield
        finally:
            watch.stop()
            inference_log.close()

    app = FastAPI(title=config.model_name, docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.mount("/docs/static", StaticFiles(directory=STATIC_FOLDER), name="swagger-static")

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        served: Served = state["served"]  # the whole request is answered by this one version
        given = request.headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        content_type = request.headers.get("content-type")
        summary = RequestSummary([], [])
        try:
            if media_type(content_type) not in CONTENT_TYPES:
                # MLflow 3.17 answers a missing Content-Type with a 500: say what it takes instead.
                raise RequestRefused(
                    f"Content-Type must be one of {list(CONTENT_TYPES)}, got {content_type!r}",
                    status=415, kind="unsupported_media_type", error_code="BAD_REQUEST",
                )
            body = await _read_body(request, config.limits)
            check = functools.partial(check_request, body, content_type, config.limits, served.horizon,
                                      served.extra_steps)
            # Parsing a large body would hold the event loop: other requests wait less if it runs aside.
            summary = await asyncio.to_thread(check) if len(body) > 65_536 else check()
            status, answer, answer_type = await _forward(served.app, request.scope, body)
            kind = _error_kind(status)
        except RequestRefused as refused:
            status, answer, answer_type, kind = refused.status, refused.as_json(), "application/json", refused.kind
        except Exception as error:  # counted and logged like any answer, not lost in a bare 500
            log.exception(f"request {request_id} failed")
            status, answer_type, kind = 500, "application/json", "server_error"
            answer = json.dumps({"error_code": "INTERNAL_ERROR", "message": f"{type(error).__name__}: {error}"})
            answer = answer.encode()
        seconds = time.perf_counter() - started
        forecast_rows = summary.forecast_rows if status == 200 else 0
        metrics.answered(status, kind, seconds, forecast_rows, len(set(summary.series)))
        inference_log.write(
            {
                "request_id": request_id,
                "model_version": served.version,
                **({"levels_model_version": served.levels_version} if served.levels_version else {}),
                "series": summary.series,
                "h": summary.h,
                "status": status,
                "error_kind": kind,
                "error": _error_message(status, answer),
                "latency_ms": round(seconds * 1000, 3),
                "forecast_rows": forecast_rows,
            },
            answer if status == 200 else None,
        )
        headers = {"X-Model-Version": served.version, "X-Request-Id": request_id, **_levels_header(served)}
        return Response(answer, status_code=status, media_type=answer_type, headers=headers)

    async def passthrough(request: Request) -> Response:
        served: Served = state["served"]
        status, answer, answer_type = await _forward(served.app, request.scope, b"")
        return Response(answer, status_code=status, media_type=answer_type,
                        headers={"X-Model-Version": served.version})

    app.get("/ping")(passthrough)
    app.get("/health")(passthrough)

    @app.get("/version")
    async def version() -> JSONResponse:
        served: Served = state["served"]
        return JSONResponse(
            {
                "model": config.model_name,
                "model_version": served.version,
                "champion_alias_version": _sample(metrics, "serving_champion_alias_version"),
                "loaded_at": served.loaded_at,
                "mlflow_version": mlflow.__version__,
                **({"levels_model": config.levels_model_name, "levels_model_version": served.levels_version}
                   if served.levels_version else {}),
            },
            headers={"X-Model-Version": served.version},
        )

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json")
    async def openapi() -> JSONResponse:
        served: Served = state["served"]
        versions = (served.version, served.levels_version)
        if versions not in documents:
            documents[versions] = await asyncio.to_thread(_document, config, served)
        return JSONResponse(documents[versions])

    @app.get("/docs")
    async def docs() -> HTMLResponse:
        return HTMLResponse(swagger_page(f"{config.model_name}: forecast API", "/openapi.json", "/docs/static"))

    return app


def _levels_header(served: Served) -> dict[str, str]:
    return {"X-Levels-Model-Version": served.levels_version} if served.levels_version else {}


def _sample(metrics: ServingMetrics, name: str) -> str | None:
    value = metrics.registry.get_sample_value(name, {"model": metrics.model_name})
    return None if value is None else str(int(value))


def _document(config: ServingConfig, served: Served) -> dict:
    """registry/serving_openapi's document (same builder, same model version), at this server's address."""
    levels = (config.levels_model_name, served.levels_version) if served.levels_version else None
    return served_document(config.model_name, served.version, config.server_url, config.limits, levels)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Serve the champion forecast model (see the module docstring). Every option defaults to the "
        "settings' serving section (MLOPS_SETTINGS); a flag given here overrides it."
    )
    parser.add_argument("--model-name", help="registered model (default: settings' registered_model_name)")
    parser.add_argument("--tracking-uri", help="MLflow registry (default: settings, else the data directory's)")
    parser.add_argument("--host", help="address to bind (serving.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (serving.port, 5001)")
    parser.add_argument("--poll-seconds", type=float, help="how often to ask for the champion alias "
                        "(serving.poll_seconds, 10)")
    parser.add_argument("--max-body-bytes", type=int, help="largest request body (serving.max_body_bytes)")
    parser.add_argument("--max-rows", type=int, help="most rows per request (serving.max_rows)")
    parser.add_argument("--max-forecast-rows", type=int, help="most forecast rows (the sum of h over the rows) per "
                        "request (serving.max_forecast_rows)")
    return parser.parse_args(argv)


def serving_options(args: argparse.Namespace, settings: Settings) -> ServingSettings:
    """The settings' serving section with the flags given on the command line put over it."""
    flags = {name: getattr(args, name) for name in ServingSettings.model_fields if getattr(args, name) is not None}
    return ServingSettings.model_validate({**settings.serving.model_dump(), **flags})


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    paths, settings = DataPaths.from_env(), load_settings()
    options = serving_options(args, settings)
    tracking_uri = args.tracking_uri or settings.mlflow_tracking_uri or paths.mlflow_tracking_uri
    mlflow.set_tracking_uri(tracking_uri)
    # The registry too: an MLFLOW_REGISTRY_URI left in the environment would otherwise serve another store's model.
    mlflow.set_registry_uri(tracking_uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    config = ServingConfig(
        model_name=args.model_name or settings.registered_model_name,
        server_url=options.url,
        log_folder=paths.root / "serving" / "logs",
        limits=RequestLimits.of(options),
        poll_seconds=options.poll_seconds,
        levels_model_name=levels_model_name(args.model_name or settings.registered_model_name)
        if settings.hierarchy is not None else None,
    )
    uvicorn.run(create_app(config), host=options.host, port=options.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
