"""Shared by the levels' model tests: a series' model and a levels' model registered in a scratch MLflow store,
the levels' rows made from the series' own forecasts (BottomUp adds up)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from mlops_assets.registry.champion_model import ChampionForecaster
from mlops_assets.registry.level_model import LevelForecasts, default_rows, register_levels
from mlops_assets.registry.model_registry import CHAMPION, register_champions
from mlops_assets_tests.serving.test_serving import MODELS, SERIES, weekly_history

HORIZON = 6
GROUPS = {"category/A": SERIES[:4], "category/B": SERIES[4:]}
BOUNDS = ["lo_80", "hi_80", "lo_95", "hi_95"]


def fitted() -> ChampionForecaster:
    champions = pd.DataFrame({"unique_id": SERIES, "model": MODELS})
    return ChampionForecaster("W-MON", 52, HORIZON).fit(weekly_history(), champions)


def by_level(forecaster: ChampionForecaster) -> pd.DataFrame:
    """forecasts_by_level as the levels layer writes it: total, categories, products; Base and BottomUp rows."""
    series = forecaster.predict().assign(level="product")
    frames = [series]
    for node, members in [("total", SERIES), *GROUPS.items()]:
        summed = series[series["unique_id"].isin(members)].groupby("ds", as_index=False)[["y_hat", *BOUNDS]].sum()
        frames.append(summed.assign(unique_id=node, level="total" if node == "total" else "category"))
    bottom_up = pd.concat(frames, ignore_index=True).assign(method="BottomUp", base_model="AutoETS", is_default=True)
    # The unreconciled rows differ: an answer taken from them would show.
    base = bottom_up.assign(method="Base", is_default=False, y_hat=bottom_up["y_hat"] + 1000.0)
    columns = ["level", "unique_id", "ds", "method", "y_hat", *BOUNDS, "base_model", "is_default"]
    return pd.concat([base, bottom_up], ignore_index=True)[columns]


@contextmanager
def registered_models(forecaster: ChampionForecaster, root: Path) -> Iterator[dict]:
    """The series' model and the levels' model registered in a scratch store under ``root``, both promoted."""
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("levels", artifact_location=(root / "a").as_uri()))
    try:
        champions = pd.DataFrame({"unique_id": SERIES, "model": MODELS})
        series = register_champions(forecaster, champions, name="sf", run_id=None, description="t", tags={})
        MlflowClient().set_registered_model_alias("sf", CHAMPION, series.version)
        table = by_level(forecaster)
        levels = LevelForecasts(default_rows(table, "product"), (80, 95), "product", series.version)
        registration = register_levels(levels, name="sf_levels", coherent=True, why="test", tags={})
        yield {"series": mlflow.pyfunc.load_model(f"models:/sf/{series.version}"),
               "levels": mlflow.pyfunc.load_model(f"models:/sf_levels/{registration.version}"),
               "table": table, "registration": registration, "forecasts": levels, "series_version": series.version}
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
