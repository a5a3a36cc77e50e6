"""A small published data directory made by hand: snapshots of every catalog table, numbers known exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.serving.overall import build_sales_overall
from mlops_assets.settings import DataPaths
from mlops_assets.warehouse import publish_snapshot

PRODUCTS = pd.DataFrame({
    "product_id": ["P001", "P002", "P003", "P004", "P005"],
    "product_name": ["Etorki 200g", "Président Camembert 250g", "Coeur de Lion Camembert 250g", "Babybel Mini x12",
                     "Etorki 500g"],
    "brand": ["Etorki", "Président", "Coeur de Lion", "Babybel", "Etorki"],
    "category": ["Hard cheese", "Soft cheese", "Soft cheese", "Hard cheese", "Hard cheese"],
})
FORECAST = ["P001", "P002", "P003", "P004"]  # P005 is excluded (too short)
HORIZON = 4


def _gold() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frames = []
    for i, row in PRODUCTS.iterrows():
        weeks = 110 if row.product_id != "P005" else 10
        ds = pd.date_range(end="2026-09-21", periods=weeks, freq="W-MON")
        frames.append(pd.DataFrame({"unique_id": row.product_id, "ds": ds,
                                    "y": rng.integers(10, 100, weeks).astype(float) * (i + 1),
                                    **row.to_dict()}))
    return pd.concat(frames, ignore_index=True)


def _forecasts() -> pd.DataFrame:
    ds = pd.date_range("2026-09-28", periods=HORIZON, freq="W-MON")
    rows = []
    for i, uid in enumerate(FORECAST):
        for day in ds:
            y_hat = 50.0 * (i + 1)
            width = 10.0 * (i + 1) * (1 if uid != "P002" else 6)  # P002: the widest intervals
            rows.append({"unique_id": uid, "ds": day, "model": ["AutoETS", "Naive", "AutoETS", "Naive"][i],
                         "y_hat": y_hat, "lo_80": y_hat - width / 2, "hi_80": y_hat + width / 2,
                         "lo_95": max(y_hat - width, 0.0), "hi_95": y_hat + width, "model_version": "3"})
    return pd.DataFrame(rows)


def publish_sample(data_dir: Path) -> DataPaths:
    paths = DataPaths(data_dir)
    gold = _gold()
    forecasts = _forecasts()
    tables = {
        "serving.sales_overall": build_sales_overall(gold, forecasts),
        "forecasting.forecasts": forecasts,
        "forecasting.series_champions": pd.DataFrame({
            "unique_id": FORECAST, "model": ["AutoETS", "Naive", "AutoETS", "Naive"],
            "smape": [10.0, 20.0, 30.0, 40.0], "runner_up": ["Naive", "AutoETS", "Naive", "AutoETS"],
            "runner_up_smape": [12.0, 22.0, 33.0, 41.0], "seasonal_naive_smape": [15.0, 25.0, 35.0, 45.0],
            "metric": "smape", "score": [10.0, 20.0, 30.0, 40.0]}),
        "forecasting.series_evaluation": pd.DataFrame({
            "unique_id": [u for u in FORECAST for _ in range(2)], "model": ["AutoETS", "Naive"] * 4,
            "smape": [10.0, 12.0, 22.0, 20.0, 30.0, 33.0, 41.0, 40.0], "mae": 1.0, "rmse": 1.0, "mase": 1.0,
            "wape": 1.0, "bias": 0.0, "n_windows": 3}),
        "monitoring.forecast_accuracy": pd.DataFrame({
            "unique_id": ["P001", "P002"], "ds": pd.to_datetime(["2026-09-21", "2026-09-21"]),
            "model": ["AutoETS", "Naive"], "model_version": ["2", "2"], "y_hat": [50.0, 100.0],
            "lo_80": [45.0, 90.0], "hi_80": [55.0, 110.0], "lo_95": [40.0, 80.0], "hi_95": [60.0, 120.0],
            "train_end": pd.to_datetime(["2026-09-14", "2026-09-14"]),
            "issued_at": pd.to_datetime(["2026-09-15", "2026-09-15"]), "horizon_step": [1, 1],
            "y": [55.0, 150.0], "abs_error": [5.0, 50.0], "smape": [200 * 5 / 105, 200 * 50 / 250]}),
        "gold.series_excluded": pd.DataFrame({
            "unique_id": ["P005"], "reason_code": ["too_short"], "reason": ["10 periods of history; 52 needed"],
            "n_periods": [10], "first_ds": pd.to_datetime(["2026-07-20"]), "last_ds": pd.to_datetime(["2026-09-21"])}),
        "raw.products": PRODUCTS.assign(source_file="products.csv", source_row=range(1, 6)),
    }
    for table, frame in tables.items():
        publish_snapshot(paths.exports, table, frame)
    return paths


@pytest.fixture(scope="session")
def published(tmp_path_factory) -> DataPaths:
    return publish_sample(tmp_path_factory.mktemp("ask_published"))
