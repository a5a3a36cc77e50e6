"""Gold layer: hand-made cases with exact values, then the vendored real datasets."""

import time

import numpy as np
import pandas as pd
import pytest

from mlops_assets.gold.aggregation import (
    EXCLUDED_COLUMNS,
    GOLD_COLUMNS,
    build_gold,
    build_gold_from_orders,
    build_gold_from_series,
    period_start,
)
from mlops_assets.settings import Settings
from mlops_assets_tests.conftest import VENDORED_DATA

T = pd.Timestamp
NaT = pd.NaT


def _orders(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["order_date", "customer_id", "product_id", "quantity", "unit_price"])
    frame["order_date"] = pd.to_datetime(frame["order_date"])
    frame.insert(0, "order_id", [f"O{i}" for i in range(len(frame))])
    # Lineage columns of raw tables must be ignored.
    return frame.assign(source_file="orders.csv", source_row=np.arange(2, len(frame) + 2))


def _products(rows: list[tuple]) -> pd.DataFrame:
    columns = ["product_id", "product_name", "brand", "category", "discontinued_date"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.assign(discontinued_date=pd.to_datetime(frame["discontinued_date"]), launch_date=NaT)


CUSTOMERS = pd.DataFrame({"customer_id": ["C1", "C2"], "customer_name": ["Alpha", "Beta"],
                          "channel": ["retail", "online"], "region": ["North", "South"]})
PRODUCTS = _products([("P1", "Ring", "Acme", "jewelry", None), ("P2", "Chain", "Bolt", "jewelry", None),
                      ("P3", "Pin", "Acme", "pins", None)])
PROMOTIONS = pd.DataFrame({
    "promotion_id": ["A", "B"], "product_id": ["P1", "P2"], "customer_id": ["C1", None],
    "start_date": pd.to_datetime(["2024-01-02", "2024-01-01"]),
    "end_date": pd.to_datetime(["2024-01-02", "2024-01-31"]), "discount_pct": [10.0, 20.0]})
# 2024-01-01 is a Monday. The last line (Wednesday 2024-01-24) leaves the week of 2024-01-22 incomplete.
ORDERS = _orders([
    ("2024-01-02", "C1", "P1", 10, 2.0),  # under promotion A (C1 only, that day)
    ("2024-01-03", "C2", "P1", 5, 3.0),
    ("2024-01-05", "C1", "P1", -2, 2.0),  # return
    ("2024-01-08", "C2", "P2", 4, 1.0),  # under promotion B (all customers)
    ("2024-01-09", "C1", "P2", 4, 1.0),  # under promotion B
    ("2024-01-15", "C1", "P1", -3, 2.0),  # a week of returns only
    ("2024-01-24", "C1", "P1", 100, 2.0),  # incomplete week: left out
    ("2024-01-24", "C2", "P3", 7, 1.0),  # P3 sells only in the incomplete week
])


def _gold(grain: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return build_gold_from_orders(ORDERS, PRODUCTS, CUSTOMERS, PROMOTIONS, Settings(grain=grain))


def test_period_start_for_weeks_days_and_months() -> None:
    days = ["2024-05-15 13:45", "2024-05-13 00:00", "2024-05-12 00:00", "2024-05-19 00:00",
            "2024-05-16 00:00", "2024-02-29 00:00"]
    dates = pd.Series(pd.to_datetime(days), index=[10, 11, 12, 13, 14, 15])
    expected = {
        "W-MON": ["2024-05-13", "2024-05-13", "2024-05-06", "2024-05-13", "2024-05-13", "2024-02-26"],
        "W-TUE": ["2024-05-14", "2024-05-07", "2024-05-07", "2024-05-14", "2024-05-14", "2024-02-27"],
        "W-SUN": ["2024-05-12", "2024-05-12", "2024-05-12", "2024-05-19", "2024-05-12", "2024-02-25"],
        "W-THU": ["2024-05-09", "2024-05-09", "2024-05-09", "2024-05-16", "2024-05-16", "2024-02-29"],
        "D": ["2024-05-15", "2024-05-13", "2024-05-12", "2024-05-19", "2024-05-16", "2024-02-29"],
        "MS": ["2024-05-01"] * 5 + ["2024-02-01"],
    }
    for frequency, starts in expected.items():
        result = period_start(dates, frequency)
        assert result.tolist() == pd.to_datetime(starts).tolist(), frequency
        assert result.index.tolist() == dates.index.tolist()
    # pandas' own W-<DAY> range generates exactly these starts.
    for frequency in ("W-MON", "W-SUN", "W-THU"):
        weeks = pd.Series(pd.date_range("2024-01-01", periods=10, freq=frequency))
        assert period_start(weeks, frequency).equals(weeks)


@pytest.mark.parametrize("frequency", ["ME", "2W-MON", "h"])
def test_period_start_rejects_unusable_frequencies(frequency: str) -> None:
    with pytest.raises(ValueError, match=frequency):
        period_start(pd.Series(pd.to_datetime(["2024-01-01"])), frequency)


def test_orders_weekly_sums_prices_promotions_and_zero_fill() -> None:
    gold, _ = _gold(["product_id"])
    assert list(gold.columns) == GOLD_COLUMNS(["product_id"])
    assert gold[["unique_id", "ds"]].values.tolist() == [
        ["P1", T("2024-01-01")], ["P1", T("2024-01-08")], ["P1", T("2024-01-15")],
        ["P2", T("2024-01-08")], ["P2", T("2024-01-15")],  # P2 starts at its first sale, not before
    ]
    assert gold["y"].tolist() == [13.0, 0.0, -3.0, 8.0, 0.0]
    assert gold["revenue"].tolist() == [31.0, 0.0, -6.0, 8.0, 0.0]
    np.testing.assert_allclose(gold["avg_unit_price"], [31 / 13, np.nan, np.nan, 1.0, np.nan])
    # P1 week 1: 10 of 15 gross units under the C1-only promotion; P2: all-customer promotion.
    np.testing.assert_allclose(gold["promo_share"], [10 / 15, 0.0, 0.0, 1.0, 0.0])
    assert gold["product_name"].tolist() == ["Ring"] * 3 + ["Chain"] * 2
    assert gold["category"].tolist() == ["jewelry"] * 5
    assert gold.dtypes.astype(str).to_dict() == {
        "unique_id": "object", "ds": "datetime64[ns]", "y": "float64", "revenue": "float64",
        "avg_unit_price": "float64", "promo_share": "float64", "imputed": "bool", "product_id": "object",
        "product_name": "object", "brand": "object", "category": "object"}


def test_orders_incomplete_last_period_is_left_out_and_reported() -> None:
    gold, excluded = _gold(["product_id"])
    assert gold["ds"].max() == T("2024-01-15")
    assert "P3" not in set(gold["unique_id"])
    row = excluded.set_index("unique_id").loc["P3"]
    assert row["reason_code"] == "too_short" and row["n_periods"] == 0
    assert "incomplete period starting 2024-01-22" in row["reason"]
    # Ending on the Sunday completes the week: it is kept.
    complete = pd.concat([ORDERS, _orders([("2024-01-28", "C1", "P2", 1, 1.0)])], ignore_index=True)
    gold, _ = build_gold_from_orders(complete, PRODUCTS, CUSTOMERS, PROMOTIONS, Settings())
    assert gold["ds"].max() == T("2024-01-22")
    assert gold.set_index(["unique_id", "ds"]).loc[("P1", T("2024-01-22")), "y"] == 100.0


def test_orders_product_by_customer_grain() -> None:
    gold, _ = _gold(["product_id", "customer_id"])
    assert list(gold.columns) == GOLD_COLUMNS(["product_id", "customer_id"])
    indexed = gold.set_index(["unique_id", "ds"])
    assert sorted(gold["unique_id"].unique()) == ["P1/C1", "P1/C2", "P2/C1", "P2/C2"]
    assert indexed.loc["P1/C1", "y"].tolist() == [8.0, 0.0, -3.0]
    assert indexed.loc["P1/C1", "promo_share"].tolist() == [1.0, 0.0, 0.0]
    assert indexed.loc["P1/C1", "avg_unit_price"].iloc[0] == 2.0
    assert indexed.loc["P1/C2", "y"].tolist() == [5.0, 0.0, 0.0]
    assert indexed.loc["P1/C2", "promo_share"].tolist() == [0.0, 0.0, 0.0]
    assert indexed.loc["P2/C1", "y"].tolist() == [4.0, 0.0]
    first = gold.drop_duplicates("unique_id").set_index("unique_id")
    assert first.loc["P2/C1", ["product_id", "customer_id", "product_name", "customer_name", "channel",
                               "region"]].tolist() == ["P2", "C1", "Chain", "Alpha", "retail", "North"]
    assert first.loc["P1/C2", "region"] == "South"


def _exclusion_orders() -> tuple[pd.DataFrame, pd.DataFrame]:
    weeks = pd.date_range("2024-01-01", "2024-02-26", freq="W-MON")  # 9 weeks, the last complete
    rows = [(week, "C1", product, 3, 1.0) for week in weeks for product in ("OK", "DATE", "LATER")]
    rows += [(week, "C1", "NOSALE", 2, 1.0) for week in weeks[:6]]  # last sale in the week of 02-05
    rows += [(week, "C1", "SHORT", 1, 1.0) for week in weeks[-3:]]
    rows += [(weeks[0], "C1", "ZERO", 5, 1.0), (weeks[0], "C2", "ZERO", -5, 1.0)]
    rows += [(weeks[-1], "C1", "ZSHORT", 1, 1.0), (weeks[-1], "C1", "ZSHORT", -1, 1.0)]
    rows += [(T("2024-03-03"), "C1", "OK", 1, 1.0)]  # Sunday: the week of 02-26 is complete
    products = _products([(p, p.lower(), "b", "c", None) for p in ("OK", "NOSALE", "SHORT", "ZERO", "ZSHORT")]
                         + [("DATE", "d", "b", "c", "2024-02-20"), ("LATER", "l", "b", "c", "2024-12-31")])
    return _orders(rows), products


def test_orders_exclusion_reasons() -> None:
    orders, products = _exclusion_orders()
    settings = Settings(horizon=2, season_length=2, backtest={"windows": 1, "min_train_periods": 2})
    assert settings.min_series_length == 4
    gold, excluded = build_gold_from_orders(orders, products, CUSTOMERS, None, settings)
    assert list(excluded.columns) == EXCLUDED_COLUMNS
    dtypes = ["object"] * 3 + ["int64", "datetime64[ns]", "datetime64[ns]"]
    assert excluded.dtypes.astype(str).tolist() == dtypes
    rows = excluded.set_index("unique_id")
    assert rows["reason_code"].to_dict() == {"DATE": "discontinued", "NOSALE": "discontinued",
                                             "SHORT": "too_short", "ZERO": "all_zero", "ZSHORT": "all_zero"}
    assert rows.loc["DATE", "reason"] == ("product discontinued on 2024-02-20, on or before the end of the "
                                          "data 2024-03-03")
    assert rows.loc["NOSALE", "reason"] == ("no positive sales since 2024-02-12 (3 periods up to "
                                            "2024-02-26; a series is discontinued after 2 periods without a sale)")
    assert rows.loc["SHORT", "reason"] == ("3 periods of history; the backtest needs 4 (2 training + "
                                           "1 window of 2)")
    assert rows.loc["ZERO", "reason"] == "y is 0 in all 9 periods"
    assert rows.loc["SHORT", ["n_periods", "first_ds", "last_ds"]].tolist() == [3, T("2024-02-12"),
                                                                                T("2024-02-26")]
    # Excluded series keep their actuals in gold; NOSALE is zero-filled up to the end of the data.
    assert set(gold["unique_id"]) == {"OK", "DATE", "LATER", "NOSALE", "SHORT", "ZERO", "ZSHORT"}
    assert gold.loc[gold["unique_id"] == "NOSALE", "y"].tolist() == [2.0] * 6 + [0.0] * 3


def test_orders_monthly_too_short_reason_with_step() -> None:
    orders = _orders([("2024-01-10", "C1", "P1", 2, 1.0), ("2024-03-31", "C1", "P1", 1, 1.0)])
    settings = Settings(frequency="MS", horizon=3, backtest={"windows": 2, "step": 1})
    gold, excluded = build_gold_from_orders(orders, PRODUCTS, CUSTOMERS, PROMOTIONS, settings)
    assert gold["ds"].tolist() == [T("2024-01-01"), T("2024-02-01"), T("2024-03-01")]  # March is complete
    assert gold["y"].tolist() == [2.0, 0.0, 1.0]
    assert excluded["reason"].tolist() == ["3 periods of history; the backtest needs 7 (3 training + 2 "
                                           "windows of 3, 1 periods apart)"]


def _series(rows: dict[str, list[tuple[str, float]]]) -> pd.DataFrame:
    frame = pd.DataFrame([(uid, ds, y) for uid, values in rows.items() for ds, y in values],
                         columns=["unique_id", "ds", "y"])
    return frame.assign(ds=pd.to_datetime(frame["ds"]), y=frame["y"].astype("float64"))


MONTHS = [f"2023-{month:02d}-01" for month in range(1, 9)]  # the data end in August
NAN = np.nan


def _values(*ys: float, months: list[str] = MONTHS) -> list[tuple[str, float]]:
    return list(zip(months[: len(ys)], ys, strict=True))


HOSTILE = {
    "A": _values(1, 2, 3, 4, 5, 6, 7, 8),
    "LEAD": _values(NAN, NAN, 1, 2, 3, 4, 5, 6),
    "TRAIL": _values(1, 2, 3, 4, 5, NAN, NAN, NAN),
    "GAP": _values(1, 2, NAN, NAN, 8, 6, 7, 8),
    "HOLE": [(m, y) for m, y in _values(1, 2, 3, 4, 5, 6, 7, 8) if m != "2023-04-01"],  # a row missing
    "NEVER": _values(NAN, NAN),
    "ZERO": _values(*[0] * 8),
    "BEHIND2": _values(1, 2, 3, 4, 5, 6),  # two periods behind the end: still forecast
    "DISC": _values(1, 2, 3, 0, 0, 0, 0, 0),
    "SHORT": _values(1, 2, 3, months=MONTHS[5:]),
}
MONTHLY = Settings(source="series", frequency="MS", horizon=4, season_length=2,
                   backtest={"windows": 1, "min_train_periods": 1})


def _with(settings: Settings, **changes: object) -> Settings:
    return Settings.model_validate({**settings.model_dump(), **changes})


def _hostile(**settings: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    series = _series(HOSTILE).assign(product_name=lambda frame: frame["unique_id"].str.lower(), source_row=1)
    return build_gold({"series": series}, _with(MONTHLY, **settings))


def test_series_not_reported_gaps_are_interpolated_and_flagged_never_dropped() -> None:
    gold, excluded = _hostile()
    assert not gold["y"].isna().any()
    by_id = gold.groupby("unique_id")
    # A gap inside a series is interpolated linearly, flagged, and the series is still forecast.
    assert by_id["y"].apply(list)["GAP"] == [1.0, 2.0, 4.0, 6.0, 8.0, 6.0, 7.0, 8.0]
    assert gold.loc[gold["unique_id"] == "GAP", "imputed"].tolist() == [False] * 2 + [True] * 2 + [False] * 4
    assert by_id["y"].apply(list)["HOLE"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert gold.loc[gold["imputed"], ["unique_id", "ds"]].values.tolist() == [
        ["GAP", T("2023-03-01")], ["GAP", T("2023-04-01")], ["HOLE", T("2023-04-01")]]
    # Leading periods without a value are trimmed, trailing ones cut: never turned into sales.
    assert by_id["ds"].min()["LEAD"] == T("2023-03-01")
    assert by_id["y"].apply(list)["TRAIL"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert gold.loc[gold["unique_id"] == "A", ["product_id", "product_name"]].iloc[0].tolist() == ["A", "a"]
    assert gold["revenue"].isna().all() and gold["avg_unit_price"].isna().all()
    assert (gold["promo_share"] == 0).all()

    rows = excluded.set_index("unique_id")
    assert MONTHLY.missing_periods == "not_reported" and MONTHLY.stale_after == 2
    assert rows["reason_code"].to_dict() == {
        "DISC": "discontinued", "NEVER": "missing_values", "SHORT": "too_short", "TRAIL": "stale",
        "ZERO": "all_zero"}
    # Every excluded series but the one without any value keeps its actuals in gold.
    assert set(gold["unique_id"]) == set(HOSTILE) - {"NEVER"}
    assert rows.loc["TRAIL", "reason"] == (
        "last reported period 2023-05-01, 3 periods before 2023-08-01, the latest period a quarter of the "
        "series reach; a series more than 2 periods behind is not forecast (gold.stale_after)")
    assert rows.loc["TRAIL", ["n_periods", "first_ds", "last_ds"]].tolist() == [5, T("2023-01-01"),
                                                                                T("2023-05-01")]
    assert rows.loc["NEVER", "reason"] == "y missing in all rows (2023-01-01 to 2023-02-01): nothing to forecast"
    assert rows.loc["NEVER", "n_periods"] == 0
    assert rows.loc["DISC", "reason"] == "no positive sales since 2023-04-01 (5 periods up to 2023-08-01; " \
                                         "a series is discontinued after 4 periods without a sale)"


def test_series_zero_setting_reads_every_missing_period_as_no_sales() -> None:
    gold, excluded = _hostile(gold={"missing_periods": "zero"})
    by_id = gold.groupby("unique_id")["y"].apply(list)
    assert by_id["GAP"] == [1.0, 2.0, 0.0, 0.0, 8.0, 6.0, 7.0, 8.0]
    assert by_id["HOLE"] == [1.0, 2.0, 3.0, 0.0, 5.0, 6.0, 7.0, 8.0]
    assert by_id["TRAIL"] == [1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0, 0.0]  # zero-filled up to the end
    assert by_id["LEAD"] == [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # an empty y is a zero, too
    assert by_id["NEVER"] == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert not gold["imputed"].any()
    assert excluded.set_index("unique_id")["reason_code"].to_dict() == {
        "DISC": "discontinued", "NEVER": "all_zero", "SHORT": "too_short", "ZERO": "all_zero"}


@pytest.mark.parametrize("missing", ["zero", "not_reported"])
def test_rows_after_a_series_last_value_are_its_planned_future_when_regressors_are_declared(missing) -> None:
    declared = {"series_columns": {"price": "last_known"}}
    gold, excluded = _hostile(gold={"missing_periods": missing}, regressors=declared)
    before, _ = _hostile(gold={"missing_periods": missing})
    by_id, today = (frame.groupby("unique_id")["y"].apply(list) for frame in (gold, before))
    # TRAIL's last three rows (empty y) give its regressors' future: never sales, not even zeros.
    assert by_id["TRAIL"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert excluded.set_index("unique_id").loc["TRAIL", "reason_code"] == "stale"
    # Empty values inside a series, and a series without any value, are what they were.
    assert by_id.drop("TRAIL").to_dict() == today.drop("TRAIL").to_dict()
    assert gold.loc[gold["unique_id"] != "TRAIL"].reset_index(drop=True).equals(
        before.loc[before["unique_id"] != "TRAIL"].reset_index(drop=True))


def test_missing_periods_defaults_follow_the_source_and_not_reported_needs_series() -> None:
    assert Settings().missing_periods == "zero"
    assert Settings(source="series").missing_periods == "not_reported"
    assert Settings(source="series", gold={"missing_periods": "zero"}).missing_periods == "zero"
    with pytest.raises(ValueError, match="not_reported applies to series files"):
        Settings(gold={"missing_periods": "not_reported"})


def test_one_series_a_period_ahead_leaves_the_others_forecast() -> None:
    """Issue 11 case 1: one series reporting one period later made every other series stale."""
    weeks = [str(day.date()) for day in pd.date_range("2024-01-01", periods=30, freq="W-MON")]
    rng = np.random.default_rng(3)
    series = {f"S{i:02d}": list(zip(weeks[:29], rng.poisson(20, 29).astype(float), strict=True))
              for i in range(12)}
    series["S00"].append((weeks[29], 21.0))
    series["BEHIND4"] = _values(*rng.poisson(20, 25).astype(float), months=weeks)  # 4 weeks behind the rest
    settings = Settings(source="series", horizon=6, backtest={"windows": 2})
    gold, excluded = build_gold({"series": _series(series)}, settings)
    assert excluded["unique_id"].tolist() == ["BEHIND4"]
    assert settings.stale_after == 3
    assert excluded["reason"].iloc[0].startswith("last reported period 2024-06-17, 4 periods before 2024-07-15, "
                                                 "the latest period a quarter of the series reach")
    # Each series keeps its own last period; none is padded up to S00's.
    last = gold.groupby("unique_id")["ds"].max()
    assert last["S00"] == T(weeks[29]) and (last.drop(["S00", "BEHIND4"]) == T(weeks[28])).all()
    # Even with stale_after 0 the eleven are not stale: only S00 reaches the last week, and staleness is
    # measured from the latest week a quarter of the series reach.
    _, strict = build_gold({"series": _series(series)}, _with(settings, gold={"stale_after": 0}))
    assert strict["unique_id"].tolist() == ["BEHIND4"]
    # Nor does one series far ahead (a wrong year, a test row) make the others stale.
    series["S01"] += [(str(day.date()), 20.0) for day in pd.date_range(weeks[29], periods=30, freq="W-MON")[1:]]
    _, ahead = build_gold({"series": _series(series)}, settings)
    assert ahead["unique_id"].tolist() == ["BEHIND4"]
    # Where a missing week means no sales, the lagging series is zero-filled up to the others' last week,
    # but nobody gets a zero week for S00's (or S01's) later ones.
    zero, excluded = build_gold({"series": _series(series)}, _with(settings, gold={"missing_periods": "zero"}))
    last = zero.groupby("unique_id")["ds"].max()
    assert excluded.empty and last["S01"] > last["S00"] == T(weeks[29])
    assert (last.drop(["S00", "S01"]) == T(weeks[28])).all()
    assert zero.loc[zero["unique_id"] == "BEHIND4", "y"].tolist()[-4:] == [0.0] * 4


def test_series_whose_dates_do_not_fit_the_frequency_are_quarantined_with_file_and_row() -> None:
    """Issue 11 case 5: mixed frequencies were summed and monthly values padded with zero weeks."""
    mondays = [str(day.date()) for day in pd.date_range("2024-01-01", periods=20, freq="W-MON")]
    fridays = [str(day.date()) for day in pd.date_range("2024-01-05", periods=20, freq="W-FRI")]
    months = [str(day.date()) for day in pd.date_range("2024-01-01", periods=5, freq="MS")]
    days = [str(day.date()) for day in pd.date_range("2024-01-01", periods=140, freq="D")]
    frame = _series({
        "WEEKLY": [(day, 1.0) for day in mondays],
        "FRIDAYS": [(day, 1.0) for day in fridays],  # one weekday, not Monday: still one value a week
        "SPARSE": [(mondays[i], 1.0) for i in (0, 1, 4, 9, 11, 19)],  # irregular: intermittent demand
        "MONTHLY": [(day, 4.0) for day in months],
        "DAILY": [(day, 1.0) for day in days],
        "MIXED": [(day, 1.0) for day in mondays] + [("2024-02-07", 1.0)],
        "EVERY4": [(mondays[i], 1.0) for i in (0, 4, 8, 12, 16)],
    })
    frame = frame.assign(source_file="series/s.csv", source_row=np.arange(2, len(frame) + 2))
    gold, excluded = build_gold({"series": frame}, Settings(source="series", horizon=4, backtest={"windows": 1}))
    bad = excluded.loc[excluded["reason_code"] == "wrong_frequency"].set_index("unique_id")["reason"]
    assert sorted(bad.index) == ["DAILY", "EVERY4", "MIXED", "MONTHLY"]
    assert set(gold["unique_id"]) == {"WEEKLY", "FRIDAYS", "SPARSE"}
    row = {uid: frame.index[(frame["unique_id"] == uid)][0] + 2 for uid in frame["unique_id"].unique()}
    assert bad["DAILY"] == (f"7 rows in the W-MON period starting 2024-01-01 (series/s.csv row {row['DAILY']}): "
                            "data finer than W-MON, or mixed; its rows would be summed; series left out of "
                            "gold: fix the file or the frequency setting")
    assert bad["MIXED"].startswith(f"2 rows in the W-MON period starting 2024-02-05 (series/s.csv row "
                                   f"{row['MIXED'] + 5})")
    assert bad["MONTHLY"].startswith(
        f"dates at different places in their W-MON periods: 2024-01-01 (Mon) (series/s.csv row "
        f"{row['MONTHLY']}) but 2024-02-01 (Thu) (series/s.csv row {row['MONTHLY'] + 1})")
    assert bad["EVERY4"].startswith("values every 4 periods: data coarser than W-MON, whose periods between "
                                    "would be interpolated")
    assert gold.loc[gold["unique_id"] == "FRIDAYS", "ds"].iloc[0] == T("2024-01-01")
    assert gold.groupby("unique_id").size().to_dict() == {"FRIDAYS": 20, "SPARSE": 20, "WEEKLY": 20}


def test_quarterly_values_in_a_monthly_file_are_not_padded() -> None:
    quarters = [str(day.date()) for day in pd.date_range("2022-01-01", periods=8, freq="QS")]
    months = [str(day.date()) for day in pd.date_range("2022-01-01", periods=24, freq="MS")]
    gold, excluded = build_gold({"series": _series({"Q": [(q, 9.0) for q in quarters],
                                                    "M": [(m, 3.0) for m in months]})}, MONTHLY)
    assert excluded.set_index("unique_id")["reason"]["Q"].startswith("values every 3 periods: data coarser "
                                                                      "than MS, whose periods between would be "
                                                                      "interpolated")
    assert set(gold["unique_id"]) == {"M"}


def test_empty_inputs_give_empty_tables_with_the_contract_columns() -> None:
    settings = Settings(grain=["product_id", "customer_id"])
    gold, excluded = build_gold({"sales_orders": ORDERS.iloc[:0]}, settings)
    assert list(gold.columns) == GOLD_COLUMNS(["product_id", "customer_id"]) and gold.empty
    assert list(excluded.columns) == EXCLUDED_COLUMNS and excluded.empty


def _read(name: str) -> pd.DataFrame:
    frame = pd.read_csv(VENDORED_DATA / name, dtype={"unique_id": str}, parse_dates=["ds"])
    return frame.assign(y=frame["y"].astype("float64"), source_file=name,
                        source_row=np.arange(2, len(frame) + 2))


def test_jewelry_weekly_series_source() -> None:
    raw = _read("jewelry_weekly.csv")
    gold, _ = build_gold_from_series(raw, Settings(source="series", frequency="W-MON"))
    assert gold["unique_id"].nunique() == raw["unique_id"].nunique() == 40
    assert (gold.groupby("unique_id").size() == 124).all()
    assert not gold[["unique_id", "ds", "y"]].isna().any().any()
    expected = raw.sort_values(["unique_id", "ds"])[["unique_id", "ds", "y"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(gold[["unique_id", "ds", "y"]], expected)


def test_carparts_monthly_stopped_series_are_stale_and_keep_their_actuals() -> None:
    raw = _read("carparts_monthly.csv")
    gold, excluded = build_gold_from_series(raw, Settings(source="series", frequency="MS", horizon=6))
    assert not gold["y"].isna().any() and not gold["imputed"].any()
    stopped = set(raw.loc[raw["y"].isna(), "unique_id"])
    assert len(stopped) == 15
    stale = excluded.loc[excluded["reason_code"] == "stale"]
    assert set(stale["unique_id"]) == stopped
    assert stale["reason"].str.contains(r"\d+ periods before 2002-03-01, the latest period").all()
    last_reported = raw.dropna(subset=["y"]).groupby("unique_id")["ds"].max()
    assert gold.groupby("unique_id")["ds"].max().to_dict() == last_reported.to_dict()
    # No gaps otherwise: every series has one row per month, and gold holds exactly the reported rows.
    assert (raw.groupby("unique_id").size() == 51).all()
    assert len(gold) == raw["y"].notna().sum()
    others = gold.loc[~gold["unique_id"].isin(stopped)]
    assert len(others) == raw.loc[~raw["unique_id"].isin(stopped), "y"].notna().sum()
    merged = others.merge(raw, on=["unique_id", "ds"], suffixes=("", "_raw"))
    assert len(merged) == len(others) and (merged["y"] == merged["y_raw"]).all()


def test_overlapping_promotions_cover_every_day_of_the_longest() -> None:
    orders = _orders([("2024-01-02", "C1", "P1", 1, 1.0), ("2024-01-10", "C2", "P1", 3, 1.0),
                      ("2024-01-20", "C1", "P1", 4, 1.0), ("2024-01-21", "C2", "P1", 6, 1.0)])
    promotions = pd.DataFrame({
        "promotion_id": ["LONG", "SHORT", "OTHER"], "product_id": ["P1", "P1", "P1"],
        "customer_id": ["C1", "C1", "C2"],
        "start_date": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-22"]),
        "end_date": pd.to_datetime(["2024-01-31", "2024-01-06", "2024-01-25"])})
    gold, _ = build_gold_from_orders(orders, PRODUCTS, CUSTOMERS, promotions, Settings())
    # C1 is under LONG all month (SHORT starts later but ends sooner); C2's promotion starts too late.
    assert gold["promo_share"].tolist() == [1.0, 0.0, 0.4]


@pytest.mark.slow
def test_five_thousand_series_of_three_years_aggregate_quickly() -> None:
    rng = np.random.default_rng(7)
    weeks = pd.date_range("2021-01-04", periods=156, freq="W-MON")
    products = np.array([f"P{i:04d}" for i in range(5000)], dtype=object)
    orders = pd.DataFrame({
        "order_date": np.repeat(weeks, 5000) + pd.to_timedelta(rng.integers(0, 7, 780_000), unit="D"),
        "customer_id": "C1", "product_id": np.tile(products, 156),
        "quantity": rng.integers(-1, 9, 780_000).astype(float), "unit_price": 2.0})
    started = time.perf_counter()
    gold, _ = build_gold_from_orders(orders, PRODUCTS, CUSTOMERS, PROMOTIONS, Settings())
    elapsed = time.perf_counter() - started
    assert len(gold) == 780_000 and gold["unique_id"].nunique() == 5000
    assert gold["y"].sum() == orders["quantity"].sum()
    assert elapsed < 15, f"{elapsed:.1f} s"
