import numpy as np
import pandas as pd

from mlops_assets.gold.regressors import build_regressors, future_periods, holiday_days, promotion_depth


def _promotions(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["promotion_id", "product_id", "customer_id", "start_date", "end_date",
                                       "discount_pct"])


def test_promotion_depth_is_the_mean_daily_discount_of_the_period():
    periods = pd.DataFrame({"unique_id": "P1", "product_id": "P1",
                            "ds": pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-15"])})
    promotions = _promotions([
        ("A", "P1", "", "2024-01-05", "2024-01-09", 20.0),  # Fri-Sun of week 1, Mon-Tue of week 2
        ("B", "P1", "C9", "2024-01-09", "2024-01-09", 30.0),  # overlaps A on Tuesday: the deeper one counts
        ("C", "P2", "", "2024-01-01", "2024-01-21", 50.0),  # another product
    ])
    depth = promotion_depth(periods, promotions, "W-MON", ["product_id"])
    np.testing.assert_allclose(depth, [3 * 20 / 7, (20 + 30) / 7, 0.0])


def test_customer_promotions_count_only_for_their_customer_at_the_customer_grain():
    periods = pd.DataFrame({"unique_id": ["P1/C1", "P1/C2"], "product_id": "P1", "customer_id": ["C1", "C2"],
                            "ds": pd.to_datetime(["2024-01-01"] * 2)})
    promotions = _promotions([("A", "P1", "C1", "2024-01-01", "2024-01-07", 10.0),
                              ("B", "P1", "", "2024-01-01", "2024-01-01", 70.0)])
    depth = promotion_depth(periods, promotions, "W-MON", ["product_id", "customer_id"])
    np.testing.assert_allclose(depth, [(70 + 6 * 10) / 7, 70 / 7])


def test_holidays_are_counted_per_period_for_the_country():
    weeks = pd.Series(pd.to_datetime(["2024-12-23", "2024-12-30", "2025-01-06"]))
    np.testing.assert_array_equal(holiday_days(weeks, "W-MON", "US"), [1, 1, 0])  # Christmas, New Year
    np.testing.assert_array_equal(holiday_days(weeks, "W-MON", None), [0, 0, 0])
    months = pd.Series(pd.to_datetime(["2024-12-01"]))
    assert holiday_days(months, "MS", "DE")[0] == 2  # 25 and 26 December


def test_regressors_cover_history_and_the_planned_horizon():
    gold = pd.DataFrame({"unique_id": "P1", "product_id": "P1",
                         "ds": pd.date_range("2024-01-01", periods=4, freq="W-MON"), "y": 1.0})
    planned = _promotions([("A", "P1", "", "2024-02-05", "2024-02-11", 25.0)])  # after the data: planned
    table = build_regressors(gold, planned, "W-MON", horizon=2, country="US")
    assert table["ds"].tolist() == list(pd.date_range("2024-01-01", periods=6, freq="W-MON"))
    assert table["is_future"].tolist() == [False] * 4 + [True] * 2
    assert table["promo_depth"].tolist() == [0, 0, 0, 0, 0, 25.0]
    assert table.loc[0, "holiday_days"] == 1  # New Year's Day
    assert future_periods(gold, "W-MON", 1)["ds"].tolist() == [pd.Timestamp("2024-01-29")]


def test_declared_series_columns_come_from_the_series_rows_and_the_rows_after_the_last_value():
    weeks = pd.date_range("2024-01-01", periods=6, freq="W-MON")
    series = pd.DataFrame({
        "unique_id": "S1", "ds": weeks, "y": [5.0, 6.0, 7.0, 8.0, np.nan, np.nan],
        # Week 2's price is empty and week 5 has no planned flag: the previous price, no promotion.
        "price": [4.0, np.nan, 3.5, 3.0, 9.0, 9.0], "promo_flag": [0.0, 1.0, 0.0, 0.0, np.nan, 1.0],
    })
    gold = series[series["y"].notna()].assign(product_id="S1")
    table = build_regressors(gold, None, "W-MON", horizon=3, country=None, series=series,
                             series_columns={"price": "last_known", "promo_flag": "planned"})
    assert list(table.columns) == ["unique_id", "ds", "is_future", "promo_depth", "holiday_days", "price",
                                   "promo_flag"]
    assert table["ds"].tolist() == list(pd.date_range("2024-01-01", periods=7, freq="W-MON"))
    assert table["is_future"].tolist() == [False] * 4 + [True] * 3
    # Kept as given (the backtest and the forecast apply last_known); a week without a row carries on.
    assert table["price"].tolist() == [4.0, 4.0, 3.5, 3.0, 9.0, 9.0, 9.0]
    assert table["promo_flag"].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
