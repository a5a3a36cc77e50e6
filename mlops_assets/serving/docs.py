"""The forecast API's document as the serving app serves it, and its Swagger UI page (offline, from the
swagger-ui-bundle package's files)."""

from __future__ import annotations

import copy
import html
from pathlib import Path
from typing import Any

import mlflow
from swagger_ui_bundle import swagger_ui_path

from mlops_assets.registry.level_model import LEVEL, LevelForecasts
from mlops_assets.registry.pyfunc_model import request_constraints
from mlops_assets.serving.limits import RequestLimits
from mlops_assets.serving.openapi import build_openapi

STATIC_FOLDER = Path(swagger_ui_path)


def swagger_page(title: str, openapi_url: str, static_url: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{html.escape(title)}</title>
  <link rel="stylesheet" href="{static_url}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{static_url}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "{openapi_url}", dom_id: "#swagger-ui", deepLinking: true}});
  </script>
</body>
</html>
"""


def app_document(document: dict[str, Any], server_url: str, limits: RequestLimits) -> dict[str, Any]:
    """The model's document (registry/serving_openapi's) as this app serves it: its address, limits, extra paths."""
    doc = copy.deepcopy(document)
    doc["servers"] = [{"url": server_url}]
    doc["info"]["description"] += (
        f" Limits per request: {limits.max_body_bytes:,} body bytes, {limits.max_rows:,} rows, "
        f"{limits.max_forecast_rows:,} forecast rows (the sum of h); beyond them the answer is 413 naming the "
        "limit. This server refuses a boolean, fractional or out-of-range h instead of letting MLflow cast it. "
        "Every answer carries the model version in the X-Model-Version header and a request id in "
        "X-Request-Id."
    )
    responses = doc["paths"]["/invocations"]["post"]["responses"]
    responses["413"] = {
        "description": "The request is larger than a limit (body bytes, rows, or forecast rows)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    doc["paths"]["/version"] = {
        "get": {
            "operationId": "version",
            "summary": "The model and registry version answering now, and the champion alias's last known version",
            "responses": {"200": {"description": "model, model_version, champion_alias_version, reloads"}},
        }
    }
    doc["paths"]["/metrics"] = {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics: requests, latency, forecast rows, model version, reloads",
            "responses": {"200": {"description": "Prometheus text exposition format"}},
        }
    }
    return doc


def with_levels(document: dict[str, Any], levels_name: str, levels_version: str,
                forecasts: LevelForecasts) -> dict[str, Any]:
    """The document of an endpoint that answers level ids too (serving.routing): the ids, the answer's level."""
    doc = copy.deepcopy(document)
    nodes = forecasts.series["unique_id"].tolist()
    schemas = doc["components"]["schemas"]
    schemas["Row"]["properties"]["unique_id"]["description"] = (
        f"A series id, or a level id: {', '.join(nodes[:4])}{', ...' if len(nodes) > 4 else ''} "
        f"({len(nodes)} level ids)"
    )
    schemas["Prediction"]["properties"][LEVEL] = {
        "type": "string",
        "description": f"The level the row answers: {forecasts.bottom_level} for a series, else the level id's "
        "level (total, category, category/brand, ...), as forecasting.forecasts_by_level.level",
    }
    schemas["Prediction"]["required"].append(LEVEL)
    doc["info"]["title"] += f" and {levels_name} (version {levels_version})"
    doc["info"]["description"] += (
        f" A level id is answered by {levels_name} version {levels_version}: its reconciled default forecast "
        "(forecasting.forecasts_by_level where is_default), model = the reconciliation method, model_version = "
        f"the version of the series' model it reconciles ({forecasts.series_version}). Every answer row says its "
        "level in `level` (the request's optional `level` is the interval level)."
    )
    examples = doc["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    records = examples["records"]["value"]["dataframe_records"]
    examples["level ids"] = {"value": {"dataframe_records": [{"unique_id": nodes[0], "h": forecasts.horizon},
                                                             *records[:1]]}}
    return doc


def served_document(model_name: str, version: str, server_url: str, limits: RequestLimits,
                    levels: tuple[str, str] | None = None) -> dict[str, Any]:
    """The document of one registered version as the serving app at ``server_url`` serves it: what
    registry/serving_openapi writes and what the app answers at /openapi.json. ``levels``: the levels' model
    name and version answering level ids beside it."""
    uri = f"models:/{model_name}/{version}"
    forecaster = mlflow.pyfunc.load_model(uri).unwrap_python_model().forecaster
    document = build_openapi(
        uri,
        server_url=server_url,
        title=f"{model_name} (version {version})",
        constraints=request_constraints(forecaster),
    )
    if levels is not None:
        forecasts = mlflow.pyfunc.load_model(f"models:/{levels[0]}/{levels[1]}").unwrap_python_model().forecasts
        document = with_levels(document, *levels, forecasts)
    return app_document(document, server_url, limits)
