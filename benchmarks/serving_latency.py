"""Latency of the serving app (`make serve`) against bare `mlflow models serve`, on the same model and requests.

Both servers run side by side on 127.0.0.1; each scenario (1 or 100 series, h = the trained horizon, 1 or 4
concurrent clients) is timed on one server then the other, for a bounded time each, and the pair is
repeated in the opposite order so that a change of load on the machine hits both. Reported: requests/s,
p50/p99 latency, the servers' CPU-seconds, the load average beside every wall time. Then the champion
alias is moved under a running client: time from the move to the first answer from the new version, and
the number of failed requests during the swap.

    python benchmarks/serving_latency.py                     # synthetic weekly data, temporary registry
    MLOPS_DATA_DIR=data python benchmarks/serving_latency.py # the product's registry and champion
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psutil
import requests
from mlflow import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_assets.devtools.processes import free_port, server_answering  # noqa: E402
from mlops_assets.registry.champion_model import ChampionForecaster  # noqa: E402
from mlops_assets.registry.model_registry import (  # noqa: E402
    CHAMPION,
    load_champion,
    register_and_gate,
    register_champions,
)
from mlops_assets.settings import DATA_DIR_ENV, DataPaths, load_settings  # noqa: E402

MODELS = ("SeasonalNaive", "Naive", "AutoTheta", "WindowAverage")
REPO = Path(__file__).resolve().parents[1]


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def synthetic_registry(folder: Path, n_series: int, name: str) -> tuple[str, ChampionForecaster, pd.DataFrame]:
    """A registry with one champion fitted on n_series synthetic weekly series; returns its tracking URI."""
    uri = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("serving-benchmark", artifact_location=(folder / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
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
    with mlflow.start_run():
        register_and_gate(
            forecaster, champions, champions, name=name, run_id=None, description="serving benchmark", tags={},
            tolerance=0,
        )
    return uri, forecaster, champions


def cpu_seconds(process: subprocess.Popen) -> float:
    """CPU time of a server and its children (the bare server runs uvicorn in a child)."""
    root = psutil.Process(process.pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def hammer(url: str, body: str, clients: int, seconds: float) -> tuple[np.ndarray, int, float]:
    """`clients` threads posting `body` for `seconds`; (latencies in ms, failures, wall seconds)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    deadline = time.perf_counter() + seconds

    def client(i: int) -> None:
        with requests.Session() as session:
            for _ in range(3):  # warm the connection
                session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
            # At least one timed request each: a slow warm-up on a loaded machine may outlast a short scenario.
            while not latencies[i] or time.perf_counter() < deadline:
                start_at = time.perf_counter()
                response = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
                latencies[i].append((time.perf_counter() - start_at) * 1000)
                failures[i] += response.status_code != 200

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return np.concatenate([np.asarray(x) for x in latencies]), sum(failures), time.perf_counter() - began


def alias_swap(name: str, version: str, url: str, poll_seconds: float, forecaster, champions) -> dict:
    """Move the champion to a new version under a running client; time to its first answer, failures."""
    # New tags: registration is idempotent, the champion's own champions and tags would reuse its version.
    new = register_champions(forecaster, champions, name=name, run_id=None, description="swap",
                             tags={"benchmark": f"alias swap {time.time():.0f}"})
    seen: list[tuple[float, int, str | None]] = []
    stop = threading.Event()
    body = json.dumps({"dataframe_records": [{"unique_id": champions["unique_id"].iloc[0], "h": 1}]})

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                response = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
                seen.append((time.perf_counter(), response.status_code, response.headers.get("X-Model-Version")))

    thread = threading.Thread(target=client)
    thread.start()
    time.sleep(1.0)
    moved = time.perf_counter()
    MlflowClient().set_registered_model_alias(name, CHAMPION, new.version)
    while time.perf_counter() - moved < poll_seconds + 60 and not any(
        v == new.version for t, _, v in seen if t > moved
    ):
        time.sleep(0.02)
    time.sleep(0.5)
    stop.set()
    thread.join()
    first = next((t for t, _, v in seen if t > moved and v == new.version), None)
    return {
        "from": version,
        "to": new.version,
        "seconds": None if first is None else first - moved,
        "requests": len(seen),
        "failed": sum(status != 200 for _, status, _ in seen),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=300, help="synthetic series (ignored with a data dir)")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per scenario and server, each pass")
    parser.add_argument("--poll-seconds", type=float, default=2.0, help="the app's alias poll interval")
    parser.add_argument("--start-timeout", type=float, default=180.0)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="serving-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    running = ExitStack()
    try:
        swap_model = None
        if os.environ.get(DATA_DIR_ENV):
            paths, settings = DataPaths.from_env(), load_settings()
            name = settings.registered_model_name
            uri = settings.mlflow_tracking_uri or paths.mlflow_tracking_uri
            source = f"registry in {paths.root}"
        else:
            name, source = "sales_forecast_benchmark", f"synthetic, {args.series} weekly series"
            uri, *swap_model = synthetic_registry(scratch, args.series, name)
        mlflow.set_tracking_uri(uri)
        model, version = load_champion(name)
        forecaster = model.unwrap_python_model().forecaster
        ids, h = forecaster.series["unique_id"].tolist(), forecaster.horizon

        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(REPO), DATA_DIR_ENV: str(scratch / "data"),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        ports = {"bare mlflow": free_port(), "serving app": free_port()}
        commands = {
            "bare mlflow": [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}@champion",
                            "--env-manager", "local", "-h", "127.0.0.1", "-p", str(ports["bare mlflow"])],
            "serving app": [sys.executable, "-m", "mlops_assets.serving.app", "--model-name", name,
                            "--tracking-uri", uri, "--port", str(ports["serving app"]),
                            "--poll-seconds", str(args.poll_seconds)],
        }
        servers, starts = {}, {}
        for which, command in commands.items():
            started = time.perf_counter()
            servers[which] = running.enter_context(server_answering(
                command, cwd=scratch, env=env, log_path=scratch / f"{which}.log",
                ping_url=f"http://127.0.0.1:{ports[which]}/ping", timeout=args.start_timeout,
            ))
            starts[which] = time.perf_counter() - started
            print(f"{which}: /ping after {starts[which]:.1f} s ({load()})", flush=True)

        rows = []
        for n_series in (1, 100):
            body = json.dumps({"dataframe_records": [{"unique_id": u, "h": h} for u in ids[:n_series]]})
            for clients in (1, 4):
                for order in (("bare mlflow", "serving app"), ("serving app", "bare mlflow")):
                    for which in order:
                        cpu = cpu_seconds(servers[which])
                        url = f"http://127.0.0.1:{ports[which]}/invocations"
                        times, failed, wall = hammer(url, body, clients, args.seconds)
                        rows.append({"series": min(n_series, len(ids)), "clients": clients, "server": which,
                                     "requests": len(times), "failed": failed, "req/s": len(times) / wall,
                                     "p50 ms": np.percentile(times, 50), "p99 ms": np.percentile(times, 99),
                                     "server CPU-s": cpu_seconds(servers[which]) - cpu, "wall s": wall,
                                     "load": os.getloadavg()[0]})
                        print(f"  {n_series} series, {clients} clients, {which}: p50 {rows[-1]['p50 ms']:.1f} ms, "
                              f"{rows[-1]['req/s']:.0f} req/s ({load()})", flush=True)
        swap = None
        if swap_model:
            swap = alias_swap(name, version, f"http://127.0.0.1:{ports['serving app']}/invocations",
                              args.poll_seconds, *swap_model)
    finally:
        running.close()
        shutil.rmtree(scratch, ignore_errors=True)

    table = pd.DataFrame(rows)
    summary = (
        table.groupby(["series", "clients", "server"], sort=False)
        .agg(requests=("requests", "sum"), failed=("failed", "sum"), req_s=("req/s", "mean"),
             p50_ms=("p50 ms", "median"), p99_ms=("p99 ms", "median"), cpu_s=("server CPU-s", "sum"),
             wall_s=("wall s", "sum"), load=("load", "mean"))
        .reset_index()
    )
    app_rows = summary[summary["server"] == "serving app"].set_index(["series", "clients"])
    bare_rows = summary[summary["server"] == "bare mlflow"].set_index(["series", "clients"])
    ratio = (app_rows["p50_ms"] / bare_rows["p50_ms"]).rename("p50 app/bare").reset_index()
    print(f"\nmodel {name} version {version} ({source}), horizon {h}, load at the end {os.getloadavg()}")
    print("start until /ping answers: " + ", ".join(f"{k} {v:.1f} s" for k, v in starts.items()) + "\n")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print("\n" + ratio.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if swap:
        seconds = "never" if swap["seconds"] is None else f"{swap['seconds']:.2f} s"
        print(f"\nalias move {swap['from']} -> {swap['to']} (poll every {args.poll_seconds:g} s): first answer from "
              f"the new version after {seconds}; {swap['failed']} of {swap['requests']} requests failed during the "
              f"swap ({load()})")


if __name__ == "__main__":
    main()
