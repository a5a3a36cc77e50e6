import numpy as np
import pandas as pd
import pytest

from mlops_assets.selection import CHAMPION_COLUMNS, select_champions, selection_summary


def _ev(rows):
    return pd.DataFrame(rows, columns=["unique_id", "model", "smape"])


def test_best_model_wins_with_runner_up_and_seasonal_naive():
    ev = _ev([("a", "SeasonalNaive", 30.0), ("a", "AutoETS", 20.0), ("a", "Naive", 25.0),
              ("b", "SeasonalNaive", 10.0), ("b", "AutoETS", 12.0), ("b", "Naive", np.nan)])
    ch = select_champions(ev)
    assert list(ch.columns) == CHAMPION_COLUMNS
    assert ch.values.tolist()[0] == ["a", "AutoETS", 20.0, "Naive", 25.0, 30.0]
    assert ch.values.tolist()[1] == ["b", "SeasonalNaive", 10.0, "AutoETS", 12.0, 10.0]


def test_ties_go_to_the_simpler_model():
    ev = _ev([("a", "AutoETS", 20.0), ("a", "SeasonalNaive", 20.0 + 1e-12), ("a", "MSTL", 20.0),
              ("b", "TSB", 5.0), ("b", "CrostonOptimized", 5.0)])
    ch = select_champions(ev).set_index("unique_id")
    assert ch.loc["a", "model"] == "SeasonalNaive" and ch.loc["a", "runner_up"] == "AutoETS"
    assert ch.loc["b", "model"] == "CrostonOptimized" and ch.loc["b", "runner_up"] == "TSB"


def test_nan_never_wins_and_all_nan_falls_back():
    ev = _ev([("a", "Naive", np.nan), ("a", "AutoETS", 50.0),
              ("b", "Naive", np.nan), ("b", "SeasonalNaive", np.nan), ("b", "AutoETS", np.nan),
              ("c", "AutoTheta", np.nan), ("c", "Naive", np.nan)])
    ch = select_champions(ev).set_index("unique_id")
    assert ch.loc["a", "model"] == "AutoETS" and ch.loc["a", "runner_up"] is None
    assert np.isnan(ch.loc["a", "runner_up_smape"]) and np.isnan(ch.loc["a", "seasonal_naive_smape"])
    assert ch.loc["b", "model"] == "SeasonalNaive" and np.isnan(ch.loc["b", "smape"])
    assert ch.loc["c", "model"] == "Naive"


def test_summary():
    ev = _ev([("a", "SeasonalNaive", 30.0), ("a", "AutoETS", 20.0),
              ("b", "SeasonalNaive", 10.0), ("b", "AutoETS", 14.0),
              ("c", "SeasonalNaive", 40.0), ("c", "AutoETS", 30.0),
              ("a", "MSTL", 1.0)])  # MSTL covers one series only: not a single model for all
    ch = select_champions(ev)
    s = selection_summary(ev, ch)
    assert s["win_share"] == {"SeasonalNaive": pytest.approx(1 / 3), "MSTL": pytest.approx(1 / 3),
                              "AutoETS": pytest.approx(1 / 3)}
    assert list(s["win_share"]) == ["SeasonalNaive", "AutoETS", "MSTL"]
    assert s["champion_smape"] == pytest.approx((1 + 10 + 30) / 3)
    assert s["best_single_model"] == "AutoETS" and s["best_single_smape"] == pytest.approx(64 / 3)
    assert s["seasonal_naive_smape"] == pytest.approx(80 / 3)
    assert s["n_series"] == 3
