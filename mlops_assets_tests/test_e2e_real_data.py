"""The vendored real datasets through the real raw and gold assets, and the documented batch command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
import yaml

from mlops_assets.settings import DataPaths
from mlops_assets_tests.conftest import VENDORED_DATA, materialize_all

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[1]
GOLD_SELECTION = dg.AssetSelection.assets(
    ["raw", "series"], ["gold", "sales_data_for_forecast"], ["gold", "series_excluded"]
)


def _land(data_dir: Path, frame: pd.DataFrame, name: str) -> None:
    folder = data_dir / "landing" / "series"
    folder.mkdir(parents=True)
    frame.to_csv(folder / name, index=False)


def _read(data_dir: Path, table: str) -> pd.DataFrame:
    with duckdb.connect(str(DataPaths(data_dir).warehouse), read_only=True) as con:
        return con.execute(f"select * from {table}").df()


def test_jewelry_weekly_gives_every_series_124_weeks(tmp_path):
    _land(tmp_path, pd.read_csv(VENDORED_DATA / "jewelry_weekly.csv"), "jewelry_weekly.csv")
    result = materialize_all(tmp_path, str(REPO / "settings" / "jewelry_weekly.yaml"), selection=GOLD_SELECTION)
    assert result.success
    gold = _read(tmp_path, "gold.sales_data_for_forecast")
    sizes = gold.groupby("unique_id").size()
    assert len(sizes) == 40 and sizes.eq(124).all()
    assert gold["y"].notna().all()
    assert _read(tmp_path, "raw.rejected_rows").empty


def test_carparts_monthly_missing_values_are_reported_not_turned_into_sales(tmp_path):
    source = pd.read_csv(VENDORED_DATA / "carparts_monthly.csv")
    _land(tmp_path, source, "carparts_monthly.csv")
    result = materialize_all(tmp_path, str(REPO / "settings" / "carparts_monthly.yaml"), selection=GOLD_SELECTION)
    assert result.success
    raw = _read(tmp_path, "raw.series")
    assert raw["y"].isna().sum() == source["y"].isna().sum() == 556
    gold = _read(tmp_path, "gold.sales_data_for_forecast")
    excluded = _read(tmp_path, "gold.series_excluded").set_index("unique_id")
    assert gold["y"].notna().all()
    stopped = source[source["y"].isna()]["unique_id"].astype(str).unique()
    assert len(stopped) == 15
    assert (excluded.loc[stopped, "reason_code"] == "stale").all()
    assert excluded.loc[stopped, "reason"].str.contains("periods before 2002-03-01, the latest period").all()
    assert len(gold) == source["y"].notna().sum()
    assert (gold["ds"].dt.day == 1).all()


def test_documented_batch_command_runs_the_whole_chain(tmp_path):
    """README: `dagster asset materialize -m mlops_assets.definitions --select '*'` on a series file."""
    jewelry = pd.read_csv(VENDORED_DATA / "jewelry_weekly.csv")
    subset = jewelry[jewelry["unique_id"].isin(sorted(jewelry["unique_id"].unique())[:12])]
    _land(tmp_path, subset.rename(columns={"unique_id": "item", "ds": "week", "y": "units"}), "items.csv")
    settings = yaml.safe_load((REPO / "settings" / "jewelry_weekly.yaml").read_text())
    settings["column_mapping"] = {"series": {"unique_id": "item", "ds": "week", "y": "units"}}
    settings["models"] = ["Naive", "SeasonalNaive", "HistoricAverage", "AutoTheta"]
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(yaml.safe_dump(settings))
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "MLOPS_DATA_DIR": str(tmp_path), "MLOPS_SETTINGS": str(settings_file),
           "DAGSTER_HOME": str(home)}
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run([str(dagster), "asset", "materialize", "-m", "mlops_assets.definitions", "--select", "*"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    forecasts = _read(tmp_path, "forecasting.forecasts")
    assert forecasts["unique_id"].nunique() == 12
    assert forecasts.groupby("unique_id").size().eq(13).all()
    overall = pd.read_parquet(DataPaths(tmp_path).exports / "serving" / "sales_overall.parquet")
    assert overall.groupby("origin")["unique_id"].nunique().to_dict() == {"Predict": 12, "Train": 12}
