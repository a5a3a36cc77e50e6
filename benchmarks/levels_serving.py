"""What answering level ids costs: MLflow's scoring app on the series' model alone against the same app on the
routed pair (series' model + levels' model, serving.routing), in process (ASGI, no network).

300 synthetic weekly series (serving_latency's) in 10 categories x 3 brands (41 level ids, BottomUp rows).
Requests: one series, 100 series, one level id, and 50 series + 50 level ids; h = the trained horizon. Each
scenario is timed on one app then the other, and again in the opposite order (ABBA); p50 in ms, with the
load average beside it.

    python benchmarks/levels_serving.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from mlflow.pyfunc import scoring_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_latency import synthetic_registry  # noqa: E402

from mlops_assets.registry.level_model import LevelForecasts, default_rows, register_levels  # noqa: E402
from mlops_assets.serving.routing import RoutedModel  # noqa: E402

NAME = "levels_serving_benchmark"
N_SERIES = 300
REPEATS = 150
BOUNDS = ["lo_80", "hi_80", "lo_95", "hi_95"]


def by_level(series: pd.DataFrame) -> pd.DataFrame:
    """BottomUp rows of the total, 10 categories and 30 brands over the series' forecasts, and the series'."""
    ids = sorted(series["unique_id"].unique())
    category = {uid: f"category/c{i % 10}" for i, uid in enumerate(ids)}
    brand = {uid: f"{category[uid]}/brand/b{i % 3}" for i, uid in enumerate(ids)}
    frames = [series.assign(level="product")]
    for level, node in (("total", lambda u: "total"), ("category", category.get), ("category/brand", brand.get)):
        grouped = series.assign(unique_id=series["unique_id"].map(node)).groupby(["unique_id", "ds"], as_index=False)
        frames.append(grouped[["y_hat", *BOUNDS]].sum().assign(level=level))
    return pd.concat(frames, ignore_index=True).assign(method="BottomUp", base_model="AutoETS", is_default=True)


def p50_ms(client: TestClient, body: str) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        answer = client.post("/invocations", content=body, headers={"Content-Type": "application/json"})
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
    return float(np.median(times) * 1000)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        uri, forecaster, _ = synthetic_registry(Path(tmp), N_SERIES, NAME)
        mlflow.set_registry_uri(uri)
        rows = default_rows(by_level(forecaster.predict()), "product")
        levels = LevelForecasts(rows, tuple(forecaster.levels), "product", "1")
        registration = register_levels(levels, name=f"{NAME}_levels", coherent=True, why="benchmark", tags={})
        series_model = mlflow.pyfunc.load_model(f"models:/{NAME}/1")
        levels_model = mlflow.pyfunc.load_model(f"models:/{NAME}_levels/{registration.version}")
        apps = {"series only": TestClient(scoring_server.init(series_model)),
                "routed": TestClient(scoring_server.init(RoutedModel(series_model, levels_model)))}
        ids = sorted(forecaster.series["unique_id"])
        nodes = levels.series["unique_id"].tolist()
        h = forecaster.horizon

        def body(uids: list[str]) -> str:
            return json.dumps({"dataframe_records": [{"unique_id": u, "h": h} for u in uids]})

        scenarios = {"1 series": body(ids[:1]), "100 series": body(ids[:100]), "1 level id": body(nodes[:1]),
                     "50 series + 50 level ids": body([u for pair in zip(ids[:50], nodes * 2, strict=False)
                                                       for u in pair])}
        print(f"{N_SERIES} series, {len(nodes)} level ids, h={h}, {REPEATS} requests per scenario and pass")
        print("| request | series only p50 ms | routed p50 ms | routed/series only | load average |")
        print("|---|---|---|---|---|")
        for name, request in scenarios.items():
            order = ["series only", "routed", "routed", "series only"]
            if name in ("1 level id", "50 series + 50 level ids"):
                order = ["routed", "routed"]  # the series-only app does not know level ids
            p50 = {}
            for app in order:
                p50.setdefault(app, []).append(p50_ms(apps[app], request))
            routed = float(np.mean(p50["routed"]))
            if "series only" in p50:
                alone = float(np.mean(p50["series only"]))
                compared = f"{alone:.1f} | {routed:.1f} | {routed / alone:.2f}"
            else:
                compared = f"- | {routed:.1f} | -"
            print(f"| {name} | {compared} | {os.getloadavg()[0]:.2f} |")


if __name__ == "__main__":
    main()
