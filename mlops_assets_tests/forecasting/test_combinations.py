import numpy as np
import pandas as pd
import pytest

from mlops_assets.forecasting.combinations import combine_backtest, final_members


def _backtest() -> pd.DataFrame:
    """One series, two windows of two steps, actuals 10: A is exact in window 1 and off by 8 in window 2,
    B the opposite, C always off by 4."""
    cutoffs = pd.to_datetime(["2024-01-01", "2024-01-15"])
    rows = []
    for w, cutoff in enumerate(cutoffs):
        ds = [cutoff + pd.Timedelta(weeks=k) for k in (1, 2)]
        for model, errors in {"A": (0, 8), "B": (8, 0), "C": (4, 4)}.items():
            rows.append(pd.DataFrame({"unique_id": "s", "cutoff": cutoff, "ds": ds, "y": 10.0, "model": model,
                                      "y_hat": 10.0 + errors[w]}))
    return pd.concat(rows, ignore_index=True)


def test_each_window_chooses_its_members_on_the_windows_before_it_only():
    combined = combine_backtest(_backtest(), size=1)
    by_window = combined.groupby("cutoff")["y_hat"].first()
    # Window 1 has no earlier window: the median of every model (10, 18, 14) is 14.
    # Window 2: A was best in window 1, so A's forecast (off by 8), although B is exact in window 2.
    np.testing.assert_allclose(by_window.to_numpy(), [14.0, 18.0])
    assert (combined["model"] == "Combination").all()
    assert list(combined.columns) == ["unique_id", "cutoff", "ds", "y", "model", "y_hat"]


def test_members_of_the_final_combination_use_every_window():
    members = final_members(_backtest(), size=2)
    # Over both windows A and B are exact half the time, C never: A and B.
    assert sorted(members["model"]) == ["A", "B"]
    assert len(combine_backtest(_backtest(), size=2)) == 4


def test_members_are_ranked_on_the_selection_metric():
    """A is off by 10 on an actual of 100 (SMAPE 10, small), B off by 1 on an actual of 1 (SMAPE 67): SMAPE
    ranks A first, RMSE (in units) B; MASE needs the history of its scale."""
    rows = []
    windows = ((pd.Timestamp("2024-01-01"), 100.0, 110.0, 100.0), (pd.Timestamp("2024-01-08"), 1.0, 1.0, 2.0))
    for cutoff, y, a, b in windows:
        for model, y_hat in (("A", a), ("B", b)):
            rows.append({"unique_id": "s", "cutoff": cutoff, "ds": cutoff + pd.Timedelta(weeks=1), "y": y,
                         "model": model, "y_hat": y_hat})
    backtest = pd.DataFrame(rows)
    assert final_members(backtest, size=1)["model"].tolist() == ["A"]
    assert final_members(backtest, size=1, metric="rmse")["model"].tolist() == ["B"]
    with pytest.raises(ValueError, match="needs the history"):
        final_members(backtest, size=1, metric="mase")
