"""The champion served by the real `mlflow models serve`: answers, 4xx errors, OpenAPI document, fuzzing.

Slow by nature (the server takes 10-40 s to start on a 2-core machine); it starts once for the module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from openapi_spec_validator import validate as validate_openapi

from mlops_assets.devtools.processes import free_port, server_answering
from mlops_assets.registry.champion_model import ChampionForecaster
from mlops_assets.registry.model_registry import register_and_gate
from mlops_assets.registry.pyfunc_model import request_constraints
from mlops_assets.serving.openapi import build_openapi, write_openapi

# mlflow models serve takes 10-40 s to start, then schemathesis fuzzes it.
pytestmark = pytest.mark.slow

NAME = "sales_forecast_serving_test"
HORIZON = 13
SERIES = [f"s{i}" for i in range(8)]
MODELS = ["SeasonalNaive", "Naive", "AutoTheta", "Naive", "SeasonalNaive", "AutoTheta", "Naive", "SeasonalNaive"]
START_TIMEOUT_S = 120


def weekly_history(n_weeks: int = 120, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2022-01-03", periods=n_weeks, freq="W-MON")
    t = np.arange(n_weeks)
    return pd.concat(
        pd.DataFrame(
            {"unique_id": uid, "ds": ds, "y": 40 + i + 8 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 2, n_weeks)}
        )
        for i, uid in enumerate(SERIES)
    ).reset_index(drop=True)


@contextmanager
def temporary_tracking(work: Path) -> Iterator[tuple[str, str]]:
    """A fresh MLflow store (tracking URI, experiment id), the process's URI restored afterwards."""
    # SQLite on tmpfs: creating the MLflow database is ~100 fsync'ed migrations (15 s on disk).
    db_dir = Path(tempfile.mkdtemp(prefix="mlflow-serving-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    tracking_uri = f"sqlite:///{db_dir}/mlflow.db"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    # The registry URI too: an earlier test's resources may have pointed it at a store since deleted.
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield tracking_uri, mlflow.create_experiment("serving-test", artifact_location=(work / "artifacts").as_uri())
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        if previous:
            os.environ["MLFLOW_TRACKING_URI"] = previous
        shutil.rmtree(db_dir, ignore_errors=True)


@contextmanager
def model_server(tracking_uri: str, work: Path) -> Iterator[str]:
    """`mlflow models serve` of the champion in its own process group; yields its base URL once /ping answers."""
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        # The serve command execs `uvicorn` by name: the venv's bin must be on PATH.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@champion"]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    base = f"http://127.0.0.1:{port}"
    # cwd outside the repository, as in a deployment: the model loads from the code it carries.
    with server_answering(command, cwd=work, env=env, log_path=work / "server.log", ping_url=f"{base}/ping",
                          timeout=START_TIMEOUT_S):
        yield base


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Two registered versions (the second promoted), served from models:/<name>@champion."""
    work = tmp_path_factory.mktemp("serving")
    with temporary_tracking(work) as (tracking_uri, experiment):
        champions = pd.DataFrame({"unique_id": SERIES, "model": MODELS, "smape": np.linspace(5, 12, len(SERIES))})
        evaluation = champions.assign(mae=1.0)
        forecaster = ChampionForecaster("W-MON", 52, HORIZON).fit(weekly_history(), champions)
        # Distinct tags: registration is idempotent, the same champions and tags would reuse version 1.
        for attempt in range(2):
            with mlflow.start_run(experiment_id=experiment):
                registered, decision = register_and_gate(
                    forecaster, champions, evaluation, name=NAME, run_id=None, description="serving test",
                    tags={"attempt": str(attempt)}, tolerance=0,
                )
        assert decision.promoted
        with model_server(tracking_uri, work) as base:
            yield {
                "base": base,
                "version": registered.version,
                "model": mlflow.pyfunc.load_model(f"models:/{NAME}/{registered.version}"),
                "work": work,
                "forecaster": forecaster,
            }


def post(served, body) -> requests.Response:
    data = body if isinstance(body, str) else json.dumps(body)
    return requests.post(
        f"{served['base']}/invocations", data=data, headers={"Content-Type": "application/json"}, timeout=30
    )


def test_served_answers_equal_batch_predictions_of_the_same_version(served):
    rows = [{"unique_id": uid, "h": HORIZON} for uid in SERIES]
    response = post(served, {"dataframe_records": rows})
    assert response.status_code == 200, response.text
    answer = pd.DataFrame(response.json()["predictions"])
    batch = served["model"].predict(pd.DataFrame(rows))
    assert served["version"] == "2"
    assert answer["model_version"].unique().tolist() == ["2"]
    assert len(answer) == len(SERIES) * HORIZON
    pd.testing.assert_frame_equal(answer, batch, check_exact=False, rtol=1e-12)


def test_split_format_and_one_level(served):
    body = {"dataframe_split": {"columns": ["unique_id", "h", "level"], "data": [["s2", 3, 80], ["s5", 2, 95]]}}
    response = post(served, body)
    assert response.status_code == 200, response.text
    answer = pd.DataFrame(response.json()["predictions"])
    assert answer[["unique_id", "ds"]].values.tolist() == [
        ["s2", "2024-04-22"],
        ["s2", "2024-04-29"],
        ["s2", "2024-05-06"],
        ["s5", "2024-04-22"],
        ["s5", "2024-04-29"],
    ]
    expected = served["forecaster"].predict(["s2"], h=3)
    np.testing.assert_allclose(answer["lo_80"][:3], expected["lo_80"])
    # Bounds of a level the row did not ask for are null (JSON has no NaN).
    assert answer["lo_95"][:3].isna().all() and answer["lo_80"][3:].isna().all()


BAD_REQUESTS = {
    "unknown id": ({"dataframe_records": [{"unique_id": "nope", "h": 2}]}, "unknown unique_id 'nope'"),
    "h zero": ({"dataframe_records": [{"unique_id": "s0", "h": 0}]}, "h must be at least 1, got h=0"),
    "h negative": ({"dataframe_records": [{"unique_id": "s0", "h": -3}]}, "h must be at least 1, got h=-3"),
    "h too big": ({"dataframe_records": [{"unique_id": "s0", "h": 14}]}, "beyond the trained horizon of 13"),
    "h not a number": ({"dataframe_records": [{"unique_id": "s0", "h": "x"}]}, "Failed to convert column h"),
    "unfitted level": ({"dataframe_records": [{"unique_id": "s0", "h": 1, "level": 90}]}, "level 90 in row 0"),
    "missing column": ({"dataframe_records": [{"unique_id": "s0"}]}, "missing inputs ['h']"),
    "no rows": ({"dataframe_records": []}, "missing inputs"),
    "malformed JSON": ('{"dataframe_records": [{"unique_id": "s0", "h": 2', "valid JSON"),
    "no input key": ({"rows": [{"unique_id": "s0", "h": 2}]}, "dataframe_records"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_400_with_a_message(served, case):
    body, fragment = BAD_REQUESTS[case]
    response = post(served, body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert fragment in error["message"]
    assert error["error_code"] in {"INVALID_PARAMETER_VALUE", "BAD_REQUEST"}
    assert "Traceback" not in error["message"]


def openapi_document(served) -> dict:
    return build_openapi(
        f"models:/{NAME}@champion",
        server_url=served["base"],
        constraints=request_constraints(served["forecaster"]),
    )


def test_openapi_document_is_valid_and_its_example_is_answered(served):
    doc = openapi_document(served)
    validate_openapi(doc)
    row = doc["components"]["schemas"]["Row"]
    assert row["required"] == ["unique_id", "h"]
    assert row["properties"]["h"] == {"type": "integer", "format": "int64", "minimum": 1, "maximum": HORIZON}
    assert row["properties"]["level"]["enum"] == [80, 95, None]
    prediction = doc["components"]["schemas"]["Prediction"]["properties"]
    assert list(prediction) == [
        "unique_id",
        "ds",
        "model",
        "model_version",
        "horizon_step",
        "y_hat",
        "lo_80",
        "hi_80",
        "lo_95",
        "hi_95",
    ]
    examples = doc["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    for example in examples.values():
        response = post(served, example["value"])
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0]["model_version"] == served["version"]


def test_missing_content_type_still_is_an_upstream_server_error(served):
    """MLflow 3.17's scoring server calls content_type.split(';') on a missing header: HTTP 500.

    A canary: when MLflow fixes it this fails; then drop the Content-Type header that the fuzzing below
    adds to every request.
    """
    response = requests.post(f"{served['base']}/invocations", timeout=30)
    assert response.status_code == 500


def test_schemathesis_finds_no_server_error(served):
    path = write_openapi(openapi_document(served), served["work"] / "openapi.json")
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        str(path),
        "--url",
        served["base"],
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "30",
        "--seed",
        "7",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
        # Every client of this endpoint sends one; without it MLflow answers 500 (see the canary above).
        "--header",
        "Content-Type: application/json",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=420, cwd=served["work"])
    print(result.stdout[-1500:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout or "passed" in result.stdout.lower(), result.stdout[-3000:]
