import numpy as np
import pandas as pd
import pytest
from utilsforecast.losses import smape as uf_smape

from mlops_assets.forecasting.metrics import EVALUATION_COLUMNS, evaluate, seasonal_naive_scale, smape


def test_smape_hand_computed_with_zero_over_zero():
    # terms: 200*2/6=66.667, 0/0 -> 0, 200*1/1=200, 0 -> mean 66.667
    assert smape([2, 0, 0, 5], [4, 0, 1, 5]) == pytest.approx((200 * 2 / 6 + 0 + 200 + 0) / 4)
    assert smape([0, 0], [0, 0]) == 0.0
    assert smape([1], [-1]) == 200.0
    assert np.isnan(smape([1, 2], [np.nan, 2]))
    with pytest.raises(ValueError):
        smape([1, 2], [1])


def test_smape_matches_utilsforecast_times_200():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"unique_id": "a", "y": rng.poisson(2, 50).astype(float),
                       "m": rng.poisson(2, 50).astype(float)})
    expected = 200 * uf_smape(df, models=["m"])["m"].iloc[0]
    assert smape(df["y"], df["m"]) == pytest.approx(expected)


def _history():
    # series a: 0..9 (weekly), seasonal period 2
    ds = pd.date_range("2024-01-01", periods=10, freq="W-MON")
    a = pd.DataFrame({"unique_id": "a", "ds": ds, "y": [1, 3, 1, 3, 2, 4, 1, 3, 5, 5.0]})
    c = pd.DataFrame({"unique_id": "c", "ds": ds, "y": [2.0] * 10})
    return pd.concat([a, c], ignore_index=True)


def _backtest():
    h = _history()
    ds = h["ds"].iloc[:10].tolist()
    rows = []
    # two windows of 2 for series a (cutoffs at index 5 and 7), models M1 and M2
    for cut in (5, 7):
        for step in (1, 2):
            y = h["y"].iloc[cut + step]
            rows.append(("a", ds[cut], ds[cut + step], y, "M1", y + 1.0))
            rows.append(("a", ds[cut], ds[cut + step], y, "M2", 0.0 if cut == 5 else y))
            rows.append(("c", ds[cut], ds[cut + step], 2.0, "M1", 2.0))
    return pd.DataFrame(rows, columns=["unique_id", "cutoff", "ds", "y", "model", "y_hat"])


def test_scale_uses_only_data_up_to_the_cutoff():
    h = _history()
    cut = pd.DataFrame({"unique_id": ["a", "a", "a", "c"],
                        "cutoff": [h["ds"].iloc[5], h["ds"].iloc[7], h["ds"].iloc[1], h["ds"].iloc[5]]})
    scale = seasonal_naive_scale(h, cut, season_length=2).to_numpy()
    # a up to idx 5: [1,3,1,3,2,4], lag-2 diffs |0,0,1,1| -> 0.5; up to idx 7 adds |1-2|,|3-4| -> 4/6
    # a up to idx 1 has 2 points <= season: lag 1 -> |3-1| = 2; c is constant -> scale 0 -> NaN
    np.testing.assert_allclose(scale[:3], [0.5, 4 / 6, 2.0])
    assert np.isnan(scale[3])


def test_evaluate_hand_computed():
    ev = evaluate(_backtest(), _history(), season_length=2)
    assert list(ev.columns) == EVALUATION_COLUMNS
    assert ev[["unique_id", "model"]].values.tolist() == [["a", "M1"], ["a", "M2"], ["c", "M1"]]
    m1 = ev.iloc[0]
    # y in window 1 (idx 6,7) = 1,3 ; window 2 (idx 8,9) = 5,5 ; M1 = y + 1
    s1 = np.mean([200 / 3, 200 / 7])
    s2 = np.mean([200 / 11, 200 / 11])
    assert m1["smape"] == pytest.approx((s1 + s2) / 2)
    assert m1["mae"] == pytest.approx(1.0) and m1["rmse"] == pytest.approx(1.0)
    assert m1["bias"] == pytest.approx(1.0)
    assert m1["mase"] == pytest.approx((1 / 0.5 + 1 / (4 / 6)) / 2)
    # WAPE per window: |1|+|1| over 1+3, then over 5+5; in percent, averaged over the windows.
    assert m1["wape"] == pytest.approx((100 * 2 / 4 + 100 * 2 / 10) / 2)
    assert m1["n_windows"] == 2
    m2 = ev.iloc[1]
    # window 1: zero forecasts -> 200 each; window 2: perfect -> 0
    assert m2["smape"] == pytest.approx(100.0)
    assert m2["bias"] == pytest.approx(np.mean([-1, -3, 0, 0]))
    assert m2["rmse"] == pytest.approx((np.sqrt((1 + 9) / 2) + 0) / 2)
    assert m2["wape"] == pytest.approx((100 * 4 / 4 + 0) / 2)
    c = ev.iloc[2]
    # 0 error on a constant series: smape 0, mase NaN (scale 0), documented
    assert c["smape"] == 0.0 and np.isnan(c["mase"]) and c["wape"] == 0.0
    assert ev["n_windows"].dtype == "int64"


def test_zero_over_zero_in_evaluate():
    bt = _backtest()
    bt.loc[bt["unique_id"] == "c", ["y", "y_hat"]] = 0.0
    ev = evaluate(bt, _history(), season_length=2)
    assert ev.loc[ev["unique_id"] == "c", "smape"].iloc[0] == 0.0


def test_nan_forecast_in_any_window_makes_model_nan():
    bt = _backtest()
    bt.loc[(bt["model"] == "M2") & (bt["cutoff"] == bt["cutoff"].max()), "y_hat"] = np.nan
    ev = evaluate(bt, _history(), season_length=2)
    m2 = ev[(ev["unique_id"] == "a") & (ev["model"] == "M2")].iloc[0]
    assert np.isnan(m2["smape"]) and np.isnan(m2["mae"]) and m2["n_windows"] == 2
    assert ev.loc[ev["model"] == "M1", "smape"].notna().all()


def test_wape_of_all_zero_actuals_is_skipped_not_infinite():
    bt = _backtest()
    first = bt["cutoff"] == bt["cutoff"].min()
    bt.loc[(bt["unique_id"] == "c") & first, "y"] = 0.0
    ev = evaluate(bt, _history(), season_length=2).set_index(["unique_id", "model"])
    # c's first window has no actuals to weigh by: only its second (exact) window counts.
    assert ev.loc[("c", "M1"), "wape"] == 0.0
    bt.loc[bt["unique_id"] == "c", "y"] = 0.0
    ev = evaluate(bt, _history(), season_length=2).set_index(["unique_id", "model"])
    assert np.isnan(ev.loc[("c", "M1"), "wape"])


def test_closed_periods_are_not_scored():
    bt = _backtest()
    # M2 forecast 0 in window 1 (SMAPE 200 there): marking those periods closed leaves window 2 only.
    closed = (bt["cutoff"] == bt["cutoff"].min()).to_numpy()
    ev = evaluate(bt.assign(closed=closed), _history(), season_length=2).set_index(["unique_id", "model"])
    assert ev.loc[("a", "M2"), "smape"] == 0.0 and ev.loc[("a", "M2"), "n_windows"] == 1
    assert ev.loc[("a", "M1"), "smape"] == pytest.approx(200 / 11)
    assert ev.loc[("a", "M1"), "mase"] == pytest.approx(1 / (4 / 6))
    # Without the flag, the same rows decide.
    assert evaluate(bt.assign(closed=False), _history(), 2).set_index(["unique_id", "model"]).loc[
        ("a", "M2"), "smape"] == pytest.approx(100.0)
