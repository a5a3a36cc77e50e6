import re

import numpy as np
import pandas as pd
import pytest

from mlops_assets.monitoring.drift import compute_drift, drift_features

CATEGORIES = ["rings", "necklaces", "earrings", "bracelets"]


def make_gold(n_series: int = 40, n_weeks: int = 80, shift_weeks: int = 0, seed: int = 7) -> pd.DataFrame:
    """Weekly gold rows; in the last ``shift_weeks`` sales double, prices rise 30% and promotions spread."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2024-01-01", periods=n_weeks, freq="W-MON")
    ids = [f"P{i:03d}" for i in range(n_series)]
    frame = pd.DataFrame({"unique_id": np.repeat(ids, n_weeks), "ds": np.tile(ds, n_series)})
    level = np.repeat(rng.uniform(1.0, 30.0, n_series), n_weeks)
    base_price = np.repeat(rng.uniform(5.0, 50.0, n_series), n_weeks)
    shifted = np.tile(np.arange(n_weeks) >= n_weeks - shift_weeks, n_series)
    frame["y"] = rng.poisson(level * np.where(shifted, 2.0, 1.0)).astype("float64")
    price = base_price * rng.uniform(0.95, 1.05, len(frame)) * np.where(shifted, 1.3, 1.0)
    frame["avg_unit_price"] = np.where(frame["y"] > 0, price, np.nan)
    frame["revenue"] = frame["y"] * price
    on_promo = rng.random(len(frame)) < np.where(shifted, 0.7, 0.2)
    frame["promo_share"] = np.where(on_promo, rng.uniform(0.2, 0.6, len(frame)), 0.0)
    frame["product_id"] = frame["unique_id"]
    frame["product_name"] = "Product " + frame["unique_id"]
    frame["brand"] = "Acme"
    frame["category"] = np.repeat([CATEGORIES[i % 4] for i in range(n_series)], n_weeks)
    return frame


def test_shift_in_level_price_and_promotions_is_drift():
    result = compute_drift(make_gold(shift_weeks=13))
    assert result.n_columns == 5
    assert {"relative_sales", "avg_unit_price", "promo_share"} <= set(result.drifted_columns)
    assert "category" not in result.drifted_columns  # the mix of series is the same in both windows
    assert result.drift_share >= 0.6
    assert result.drift_share == pytest.approx(len(result.drifted_columns) / result.n_columns)
    # 40 series x 52 weeks = 2080 reference rows: Evidently uses distances, not tests.
    assert result.n_reference_rows == 2080 and result.n_current_rows == 520
    assert "Wasserstein distance (normed)" in result.method and "Jensen-Shannon" in result.method
    sales = result.per_column.set_index("column").loc["relative_sales"]
    assert sales["drifted"] and sales["score"] > 1.0 and sales["threshold"] == 0.1
    assert result.current_window == (pd.Timestamp("2025-04-14"), pd.Timestamp("2025-07-07"))
    assert result.reference_window == (pd.Timestamp("2024-04-15"), pd.Timestamp("2025-04-07"))
    assert result.reference_periods_used == 52 and result.notes == []
    assert result.html_path is None


def test_stable_data_is_not_drift():
    result = compute_drift(make_gold())
    assert result.drift_share < 0.5
    assert "relative_sales" not in result.drifted_columns
    assert "avg_unit_price" not in result.drifted_columns
    assert (result.per_column.loc[result.per_column["kind"] == "numerical", "score"] < 0.1).all()


def test_same_input_same_result():
    gold = make_gold(shift_weeks=13)
    first, second = compute_drift(gold), compute_drift(gold)
    pd.testing.assert_frame_equal(first.per_column, second.per_column)
    assert first.method == second.method


def test_small_data_uses_ks_and_a_shortened_reference():
    # 10 series x 30 weeks: 17 reference weeks, 170 rows: K-S and chi-square/Z tests on p-values.
    result = compute_drift(make_gold(n_series=10, n_weeks=30, shift_weeks=13))
    assert result.reference_periods_used == 17
    assert "shortened to 17 of 52 periods" in result.method
    assert result.n_reference_rows == 170
    methods = result.per_column.set_index("column")["method"]
    assert methods["relative_sales"] == "K-S p_value"
    assert methods["is_zero"] in {"Z-test p_value", "chi-square p_value"}
    assert "relative_sales" in result.drifted_columns and "avg_unit_price" in result.drifted_columns


def test_html_report_is_written_and_never_overwritten(tmp_path):
    gold = make_gold(n_series=10, n_weeks=40)
    first = compute_drift(gold, report_dir=tmp_path, stamp="20261122T140000Z")
    assert first.html_path == tmp_path / "drift_20261122T140000Z.html"
    assert first.json_path == tmp_path / "drift_20261122T140000Z.json"
    content = first.html_path.read_bytes()
    assert b"<html" in content.lower() and len(content) > 100_000
    second = compute_drift(gold, report_dir=tmp_path, stamp="20261122T140000Z")
    assert second.html_path == tmp_path / "drift_20261122T140000Z_1.html"
    assert second.json_path.is_file()
    assert first.html_path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "drift_20261122T140000Z.html",
        "drift_20261122T140000Z.json",
        "drift_20261122T140000Z_1.html",
        "drift_20261122T140000Z_1.json",
    ]


def test_too_short_data_is_refused():
    with pytest.raises(ValueError, match="at least recent_periods \\+ 2 = 15 periods.*found 14"):
        compute_drift(make_gold(n_series=5, n_weeks=14))


def test_series_source_skips_prices_and_empty_categories():
    gold = make_gold(n_series=20, n_weeks=70, shift_weeks=13)[["unique_id", "ds", "y"]]
    gold = gold.assign(avg_unit_price=np.nan, promo_share=0.0, category=None, product_id=gold["unique_id"])
    gold.loc[gold.index[:3], "y"] = np.nan  # not reported: left out, not counted as zero
    result = compute_drift(gold)
    assert sorted(result.per_column["column"]) == ["is_zero", "relative_sales"]
    assert "avg_unit_price left out: no values in one of the windows" in result.notes
    assert "promo_share left out: the same value in both windows" in result.notes
    assert "relative_sales" in result.drifted_columns


def test_features_are_relative_to_each_series_reference_level():
    gold = make_gold(n_series=3, n_weeks=20)
    gold.loc[gold["unique_id"] == "P002", "y"] = 0.0  # no reference level: left out
    features = drift_features(gold, recent_periods=5, reference_periods=10)
    assert sorted(features["unique_id"].unique()) == ["P000", "P001"]
    assert set(features["window"]) == {"reference", "current"}
    assert features["ds"].min() == pd.Timestamp("2024-01-01") + pd.Timedelta(weeks=5)
    reference = features.loc[features["window"] == "reference"]
    means = reference.groupby("unique_id")[["relative_sales", "avg_unit_price"]].mean()
    np.testing.assert_allclose(means.to_numpy(), 1.0)
    assert features["is_zero"].dtype == bool


def test_flat_series_without_prices_compare_nothing(tmp_path):
    gold = make_gold(n_series=3, n_weeks=30)[["unique_id", "ds"]].assign(y=5.0, promo_share=0.0)
    result = compute_drift(gold, report_dir=tmp_path)
    assert (result.drift_share, result.n_columns, result.drifted_columns) == (0.0, 0, [])
    assert result.method.startswith("no feature varies")
    assert result.html_path is None and list(tmp_path.iterdir()) == []


def test_the_report_names_its_windows_by_date_and_its_axes_by_unit(tmp_path):
    result = compute_drift(make_gold(n_series=10, n_weeks=80, shift_weeks=13), report_dir=tmp_path, stamp="s")
    html = result.html_path.read_text(encoding="utf-8")
    body = html[html.find("<body"):]
    assert "<b>Current</b>: 2025-04-14 to 2025-07-07 (13 periods, 130 series-periods)" in body[:2000]
    assert "<b>Reference</b>: 2024-04-15 to 2025-04-07 (52 periods, 520 series-periods)" in body[:2000]
    assert re.search(r"units sold \(x the series(&#x27;|')? reference mean\)", html)
    assert "relative_sales" not in html
    # The tables and the metadata keep the feature names the code and the drift summary use.
    assert set(result.per_column["column"]) == {"relative_sales", "avg_unit_price", "promo_share", "is_zero",
                                                "category"}
    assert "relative_sales" in result.drifted_columns
