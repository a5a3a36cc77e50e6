"""Hostile series (NaN, infinite, too short, all zero, constant) are each handled on purpose: excluded with
a reason or forecast, never a crash and never a silent drop."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_assets.forecasting.backtest import run_backtest
from mlops_assets.forecasting.metrics import evaluate
from mlops_assets.forecasting.selection import select_champions
from mlops_assets.gold.aggregation import build_gold_from_series
from mlops_assets.ingest.ingestion import read_landing_file
from mlops_assets.registry.champion_model import forecast_champions
from mlops_assets.settings import Settings

SETTINGS = Settings(source="series", frequency="W-MON", horizon=4, season_length=4,
                    backtest={"windows": 2, "step": 4}, models=["Naive", "SeasonalNaive", "HistoricAverage"])


def _series() -> pd.DataFrame:
    weeks = pd.date_range("2024-01-01", periods=40, freq="W-MON")
    rng = np.random.default_rng(0)
    frames = {
        "OK": 20 + rng.poisson(5, 40).astype(float),
        "CONST": np.full(40, 5.0),
        "ZERO": np.zeros(40),
        "GAP": np.r_[np.ones(20), np.nan, np.ones(19)],
    }
    rows = [pd.DataFrame({"unique_id": uid, "ds": weeks, "y": y}) for uid, y in frames.items()]
    rows.append(pd.DataFrame({"unique_id": "SHORT", "ds": weeks[-6:], "y": 3.0}))
    return pd.concat(rows, ignore_index=True)


def test_infinite_values_are_rejected_at_ingestion_with_their_line(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "s.csv").write_text("unique_id,ds,y\nA,2024-01-01,1\nA,2024-01-08,inf\nA,2024-01-15,\n")
    result = read_landing_file(folder / "s.csv", "series", landing_root=tmp_path)
    assert result.rejected[["source_row", "column_name"]].values.tolist() == [[3, "y"]]
    assert len(result.rows) == 2 and result.rows["y"].isna().sum() == 1


def test_each_hostile_series_is_excluded_with_a_reason_or_forecast():
    gold, excluded = build_gold_from_series(_series(), SETTINGS)
    reasons = excluded.set_index("unique_id")["reason_code"].to_dict()
    assert reasons == {"SHORT": "too_short", "ZERO": "all_zero"}
    eligible = gold[~gold["unique_id"].isin(excluded["unique_id"])][["unique_id", "ds", "y"]]
    assert set(eligible["unique_id"]) == {"OK", "CONST", "GAP"}
    # The one missing week of GAP is interpolated between its neighbours, flagged, and the series forecast.
    gap = gold.loc[gold["unique_id"] == "GAP"]
    assert len(gap) == 40 and (gap["y"] == 1.0).all() and gap["imputed"].sum() == 1

    backtest = run_backtest(eligible, SETTINGS)
    evaluation = evaluate(backtest, eligible, SETTINGS.season)
    champions = select_champions(evaluation).set_index("unique_id")
    assert champions.loc["CONST", "smape"] == 0.0
    assert champions.loc["CONST", "model"] == "Naive"  # every model is perfect: the simplest wins the tie

    forecasts = forecast_champions(eligible, champions.reset_index()[["unique_id", "model"]], SETTINGS, backtest)
    const = forecasts[forecasts["unique_id"] == "CONST"]
    assert len(const) == SETTINGS.horizon and np.allclose(const["y_hat"], 5.0)
    assert np.isfinite(forecasts[["y_hat", "lo_95", "hi_95"]].to_numpy()).all()
    assert forecasts.groupby("unique_id").size().to_dict() == {"CONST": 4, "GAP": 4, "OK": 4}
