"""An OpenAPI 3.0 document for a model served by ``mlflow models serve`` (POST /invocations, GET /ping).

MLflow's scoring server publishes no schema of its own; this one is built from the model signature so a
client (or a fuzzer such as schemathesis) knows the request columns, the answer and the error shape.
The request body is either ``dataframe_records`` (a list of row objects) or ``dataframe_split``
(``columns`` + ``data``); the answer is ``{"predictions": [rows]}``; a request the model refuses gets
HTTP 400 with ``{"error_code", "message"}`` (MLflow's serialized ``MlflowException``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema

from mlops_assets.serving.limits import CONTENT_TYPES, PARQUET

OPENAPI_VERSION = "3.0.3"

_JSON_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "long": {"type": "integer", "format": "int64"},
    "integer": {"type": "integer", "format": "int32"},
    "double": {"type": "number", "format": "double"},
    "float": {"type": "number", "format": "float"},
    "boolean": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "binary": {"type": "string", "format": "byte"},
}
_PLACEHOLDERS = {"string": "a", "integer": 1, "number": 1.0, "boolean": True}


def _column_schema(spec: ColSpec, constraints: Mapping[str, Any] | None) -> dict[str, Any]:
    type_name = getattr(spec.type, "name", str(spec.type))
    if type_name not in _JSON_TYPES:
        raise ValueError(f"column {spec.name!r} has type {type_name!r}, which this document cannot describe")
    schema = {**_JSON_TYPES[type_name], **(constraints or {})}
    if not spec.required:
        schema["nullable"] = True
        if "enum" in schema:  # OpenAPI 3.0.3: a nullable enum must list null itself
            schema["enum"] = [*schema["enum"], None]
    return schema


def _row_schema(schema: Schema, constraints: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    specs = schema.inputs
    unnamed = [s for s in specs if not isinstance(s, ColSpec) or s.name is None]
    if unnamed:
        raise ValueError("only signatures of named columns (a DataFrame schema) can be described")
    return {
        "type": "object",
        "required": [s.name for s in specs if s.required],
        "properties": {s.name: _column_schema(s, constraints.get(s.name)) for s in specs},
    }


def _load(model_uri: str) -> tuple[ModelSignature, list[dict[str, Any]] | None]:
    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri)
    model = Model.load(os.path.join(local, "MLmodel"))
    if model.signature is None:
        raise ValueError(f"model {model_uri} has no signature; log it with one to describe its endpoint")
    example = model.load_input_example(local)
    records = json.loads(example.to_json(orient="records")) if example is not None else None
    return model.signature, records


def build_openapi(
    signature_or_model_uri: ModelSignature | str,
    *,
    server_url: str = "http://127.0.0.1:5000",
    title: str = "Sales forecast model",
    example_records: list[dict[str, Any]] | None = None,
    constraints: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The document for a signature, or for a logged/registered model (``models:/name@champion``).

    `constraints` refines request columns with JSON-schema keywords (e.g. ``{"h": {"minimum": 1,
    "maximum": 13}}``) that a signature cannot express; `example_records` replaces the model's input example.
    """
    if isinstance(signature_or_model_uri, str):
        signature, logged_example = _load(signature_or_model_uri)
        example_records = example_records or logged_example
    else:
        signature = signature_or_model_uri
    row = _row_schema(signature.inputs, constraints or {})
    names = list(row["properties"])
    if not example_records:
        example_records = [{n: _PLACEHOLDERS.get(row["properties"][n]["type"]) for n in row["required"]}]
    split_example = {
        "columns": [n for n in names if any(n in r for r in example_records)],
        "data": [[r.get(n) for n in names if any(n in r for r in example_records)] for r in example_records],
    }
    any_cell = {"anyOf": [{k: v for k, v in p.items() if k != "nullable"} for p in row["properties"].values()]}
    any_cell["nullable"] = True

    output = signature.outputs
    prediction_row = _row_schema(output, {}) if output is not None and output.has_input_names() else {}
    error = {
        "type": "object",
        "required": ["error_code", "message"],
        "properties": {
            "error_code": {"type": "string", "example": "INVALID_PARAMETER_VALUE"},
            "message": {"type": "string"},
            "stack_trace": {"type": "string"},
        },
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": "1",
            "description": "Endpoint of `mlflow models serve`. Bounds of interval levels a row did not ask "
            "for are null. Errors the caller can fix answer 400 with a message saying what is wrong. "
            "MLflow casts each column to its declared type before the model sees it: an optional column "
            "(level) must be given in every row or in none, and a fractional integer is truncated.",
        },
        "servers": [{"url": server_url}],
        "paths": {
            "/invocations": {
                "post": {
                    "operationId": "invocations",
                    "summary": "Forecasts for the requested rows",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/DataframeRecords"},
                                        {"$ref": "#/components/schemas/DataframeSplit"},
                                    ]
                                },
                                "examples": {
                                    "records": {"value": {"dataframe_records": example_records}},
                                    "split": {"value": {"dataframe_split": split_example}},
                                },
                            },
                            # Columns unique_id and h, as in the JSON forms.
                            "text/csv": {"schema": {"type": "string"}},
                            PARQUET: {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "One row per requested series and future period",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Predictions"}}},
                        },
                        "400": {
                            "description": "The request is malformed or asks for something the model "
                            "cannot answer (unknown series, horizon out of range, missing column, ...)",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                        },
                        "415": {"description": f"Content type other than {', '.join(CONTENT_TYPES)}"},
                    },
                }
            },
            "/ping": {
                "get": {
                    "operationId": "ping",
                    "summary": "Health check: 200 once the model is loaded",
                    "responses": {"200": {"description": "The model is loaded"}},
                }
            },
        },
        "components": {
            "schemas": {
                "Row": row,
                "DataframeRecords": {
                    "type": "object",
                    "required": ["dataframe_records"],
                    "additionalProperties": False,
                    "properties": {
                        "dataframe_records": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"$ref": "#/components/schemas/Row"},
                        }
                    },
                },
                "DataframeSplit": {
                    "type": "object",
                    "required": ["dataframe_split"],
                    "additionalProperties": False,
                    "properties": {
                        "dataframe_split": {
                            "type": "object",
                            "required": ["columns", "data"],
                            "properties": {
                                "columns": {"type": "array", "items": {"type": "string", "enum": names}},
                                "data": {"type": "array", "items": {"type": "array", "items": any_cell}},
                            },
                        }
                    },
                },
                "Prediction": prediction_row,
                "Predictions": {
                    "type": "object",
                    "required": ["predictions"],
                    "properties": {
                        "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}}
                    },
                },
                "Error": error,
            }
        },
    }


def write_openapi(doc: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write the document as indented JSON (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path
