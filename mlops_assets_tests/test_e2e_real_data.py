"""The vendored real datasets through the real raw and gold assets (test_readme runs the batch example)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

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

