"""Latency of the champion model behind `mlflow models serve`, against calling the same model in-process.

Measures the server's start time (until /ping answers) and p50/p99 latency of 1-series and 100-series
requests (h = the trained horizon), each over a bounded number of requests on loopback.

    python benchmarks/serving_latency.py                     # synthetic weekly data, temporary registry
    MLOPS_DATA_DIR=data python benchmarks/serving_latency.py # the product's registry and champion
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_assets.registry.champion_model import ChampionForecaster  # noqa: E402
from mlops_assets.registry.model_registry import (  # noqa: E402
    load_champion,
    register_and_gate,
)
from mlops_assets.settings import DATA_DIR_ENV, DataPaths, load_settings  # noqa: E402
from mlops_assets_tests.processes import free_port, stop_process_group  # noqa: E402

MODELS = ("SeasonalNaive", "Naive", "AutoTheta", "WindowAverage")


def synthetic_registry(folder: Path, n_series: int, name: str) -> str:
    """A registry with one champion fitted on n_series synthetic weekly series; returns its tracking URI."""
    uri = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("serving-benchmark", artifact_location=(folder / "artifacts").as_uri())
    rng = np.random.default_rng(0)
    ds = pd.date_range("2022-01-03", periods=120, freq="W-MON")
    t = np.arange(len(ds))
    ids = [f"item{i:04d}" for i in range(n_series)]
    history = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, len(ds)),
            "ds": np.tile(ds, n_series),
            "y": np.concatenate([30 + 8 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 3, len(ds)) for _ in ids]),
        }
    )
    champions = pd.DataFrame({"unique_id": ids, "model": [MODELS[i % len(MODELS)] for i in range(n_series)]})
    champions["smape"] = 10.0
    forecaster = ChampionForecaster("W-MON", 52, 13).fit(history, champions)
    with mlflow.start_run(experiment_id=experiment):
        register_and_gate(
            forecaster, champions, champions, name=name, run_id=None, description="serving benchmark", tags={},
            tolerance=0,
        )
    return uri


def start_server(uri: str, name: str, port: int, log: Path, timeout_s: float) -> tuple[subprocess.Popen, float]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            f"models:/{name}@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {log}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                return process, time.perf_counter() - started
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    stop_process_group(process, signal.SIGTERM)
    raise RuntimeError(f"no /ping after {timeout_s} s; see {log}")


def timed(call, n: int, budget_s: float) -> np.ndarray:
    """Seconds per call over n calls (fewer if the budget runs out), after 3 warm-up calls."""
    for _ in range(3):
        call()
    times, deadline = [], time.perf_counter() + budget_s
    while len(times) < n and time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=300, help="synthetic series (ignored with a data dir)")
    parser.add_argument("--requests", type=int, default=200, help="requests per scenario")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds at most per scenario")
    parser.add_argument("--start-timeout", type=float, default=180.0)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="serving-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        if os.environ.get(DATA_DIR_ENV):
            paths, settings = DataPaths.from_env(), load_settings()
            name = settings.registered_model_name
            uri = settings.mlflow_tracking_uri or paths.mlflow_tracking_uri
            source = f"registry in {paths.root}"
        else:
            name, source = "sales_forecast_benchmark", f"synthetic, {args.series} weekly series"
            uri = synthetic_registry(scratch, args.series, name)
        mlflow.set_tracking_uri(uri)
        model, version = load_champion(name)
        forecaster = model.unwrap_python_model().forecaster
        ids = forecaster.series["unique_id"].tolist()
        h = forecaster.horizon

        port = free_port()
        process, start_s = start_server(uri, name, port, scratch / "server.log", args.start_timeout)
        rows = []
        try:
            session = requests.Session()
            for n_series in (1, 100):
                request = pd.DataFrame({"unique_id": ids[:n_series], "h": h})
                body = json.dumps({"dataframe_records": request.to_dict(orient="records")})

                def over_http(body=body) -> None:
                    response = session.post(
                        f"http://127.0.0.1:{port}/invocations",
                        data=body,
                        headers={"Content-Type": "application/json"},
                        timeout=60,
                    )
                    response.raise_for_status()

                for where, call in (("HTTP", over_http), ("in-process", lambda r=request: model.predict(r))):
                    times = timed(call, args.requests, args.budget) * 1000
                    rows.append(
                        {
                            "series": min(n_series, len(ids)),
                            "rows out": min(n_series, len(ids)) * h,
                            "via": where,
                            "requests": len(times),
                            "p50 ms": np.percentile(times, 50),
                            "p99 ms": np.percentile(times, 99),
                            "mean ms": times.mean(),
                        }
                    )
        finally:
            stop_process_group(process, signal.SIGTERM)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nmodel {name} version {version} ({source}), horizon {h}")
    print(f"server start until /ping answers: {start_s:.1f} s\n")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.1f}"))


if __name__ == "__main__":
    main()
