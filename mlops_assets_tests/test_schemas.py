"""The Pandera contracts catch what they promise to catch (a check that cannot fail proves nothing)."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest

from mlops_assets import schemas


def _gold() -> pd.DataFrame:
    weeks = pd.date_range("2026-01-05", periods=4, freq="W-MON")
    return pd.DataFrame({
        "unique_id": "P1", "ds": weeks, "y": [1.0, 0.0, 2.0, 3.0], "revenue": [2.0, 0.0, 4.0, 6.0],
        "avg_unit_price": [2.0, None, 2.0, 2.0], "promo_share": [0.0, 0.0, 0.5, 1.0],
        "product_id": "P1", "product_name": "Etorki 200g", "brand": "Etorki", "category": "Hard cheese",
    })


def _failed_checks(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> set[str]:
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        schema.validate(frame, lazy=True)
    count, examples = schemas.failure_summary(caught.value)
    assert count == len(caught.value.failure_cases) and len(examples) <= 20
    return set(caught.value.failure_cases["check"].astype(str))


def test_gold_contract_accepts_good_data_and_finds_a_gap_and_a_bad_share():
    schema = schemas.gold_schema(["product_id"], "W-MON")
    schema.validate(_gold(), lazy=True)
    broken = _gold().drop(index=1)
    broken.loc[3, "promo_share"] = 1.5
    failed = _failed_checks(schema, broken)
    assert any("without gaps" in c for c in failed)
    assert any("in_range" in c for c in failed)


def test_sales_orders_contract_finds_unknown_ids_and_duplicate_lines():
    orders = pd.DataFrame({
        "order_id": ["SO-1", "SO-1"], "order_date": pd.to_datetime(["2026-01-05", "2026-01-06"]),
        "customer_id": ["C1", "C1"], "product_id": ["P1", "P1"], "quantity": [2.0, -1.0],
        "unit_price": [3.0, 3.0], "source_file": "sales_orders/a.csv", "source_row": [2, 3],
        "ingested_at": pd.Timestamp("2026-01-07"),
    })
    failed = _failed_checks(schemas.sales_orders_schema(["P2"], ["C1"]), orders)
    assert any("reference table" in c for c in failed)
    assert any("unique" in c.lower() or "duplicate" in c.lower() for c in failed)


def test_forecast_contracts_find_crossed_bounds_and_smape_out_of_range():
    forecasts = pd.DataFrame({
        "unique_id": ["P1"], "ds": pd.to_datetime(["2026-02-02"]), "model": ["Naive"], "y_hat": [5.0],
        "lo_80": [6.0], "hi_80": [7.0], "lo_95": [1.0], "hi_95": [9.0], "model_version": ["1"],
    })
    assert any("lo_80 <= y_hat" in c for c in _failed_checks(schemas.forecasts_schema(), forecasts))
    scored = forecasts.assign(lo_80=4.0, train_end=pd.Timestamp("2026-02-09"), issued_at=pd.Timestamp("2026-01-26"),
                              horizon_step=1, y=4.0, abs_error=1.0, smape=250.0)
    failed = _failed_checks(schemas.forecast_accuracy_schema(), scored)
    assert any("in_range" in c for c in failed)
    assert any("after its model's training data" in c for c in failed)


def test_evaluation_champions_and_backtest_contracts_cover_the_metric_and_closures():
    evaluation = pd.DataFrame({"unique_id": ["P1", "P1"], "model": ["Naive", "SeasonalNaive"], "smape": [10.0, 20.0],
                               "mae": 1.0, "rmse": 1.0, "mase": [0.9, None], "wape": [12.0, None], "bias": 0.0,
                               "n_windows": 3})
    schemas.SERIES_EVALUATION.validate(evaluation, lazy=True)
    failed = _failed_checks(schemas.SERIES_EVALUATION, evaluation.assign(wape=[-1.0, 5.0], mase=[0.5, -0.1]))
    assert sum("greater_than_or_equal_to" in c for c in failed) >= 1
    champions = pd.DataFrame({"unique_id": ["P1", "P2"], "model": "Naive", "smape": [10.0, 20.0],
                              "runner_up": None, "runner_up_smape": float("nan"), "seasonal_naive_smape": 30.0,
                              "metric": ["wape", "smape"], "score": [12.0, 20.0]})
    schemas.SERIES_CHAMPIONS.validate(champions, lazy=True)
    failed = _failed_checks(schemas.SERIES_CHAMPIONS, champions.assign(metric=["mape", "smape"], score=[12.0, 19.0]))
    assert any("isin" in c for c in failed) and any("score is the SMAPE" in c for c in failed)
    backtest = pd.DataFrame({"unique_id": "P1", "cutoff": pd.Timestamp("2026-01-03"),
                             "ds": pd.to_datetime(["2026-01-04", "2026-01-05"]), "y": [0.0, 5.0], "model": "Naive",
                             "y_hat": [0.0, 4.0], "closed": [True, False]})
    schemas.BACKTEST_FORECASTS.validate(backtest, lazy=True)
    schemas.BACKTEST_FORECASTS.validate(backtest.drop(columns="closed"), lazy=True)
    assert any("closed period is forecast as 0" in c
               for c in _failed_checks(schemas.BACKTEST_FORECASTS, backtest.assign(y_hat=[3.0, 4.0])))


def test_contracts_bound_every_number_to_a_finite_plausible_range():
    """quantity 1e300 made revenue infinite and published an interval of 6e298; each layer now stops it."""
    orders = pd.DataFrame({
        "order_id": ["SO-1", "SO-2", "SO-3"], "order_date": pd.to_datetime(["2026-01-05"] * 3),
        "customer_id": "C1", "product_id": "P1", "quantity": [1e300, 2.0, 1.0],
        "unit_price": [3.0, float("inf"), 3.0], "source_file": "sales_orders/a.csv", "source_row": [2, 3, 4],
        "ingested_at": pd.Timestamp("2026-01-07"),
    })
    failed = schemas.sales_orders_schema()
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        failed.validate(orders, lazy=True)
    assert sorted(caught.value.failure_cases["column"]) == ["quantity", "unit_price"]

    gold = _gold()
    gold.loc[2, "revenue"] = float("inf")
    assert any("schemas.py limits" in c for c in _failed_checks(schemas.gold_schema(["product_id"], "W-MON"), gold))

    forecasts = pd.DataFrame({
        "unique_id": ["P1"], "ds": pd.to_datetime(["2026-02-02"]), "model": ["Naive"], "y_hat": [5.0],
        "lo_80": [4.0], "hi_80": [7.0], "lo_95": [0.0], "hi_95": [6e298], "model_version": ["1"],
    })
    assert any("schemas.py limits" in c for c in _failed_checks(schemas.forecasts_schema(), forecasts))
    overall = forecasts.rename(columns={"y_hat": "sales"}).assign(origin="Predict")
    assert any("schemas.py limits" in c for c in _failed_checks(schemas.sales_overall_schema(), overall))
    schemas.forecasts_schema().validate(forecasts.assign(hi_95=9.0), lazy=True)


def test_a_promotion_must_name_a_known_customer_or_none():
    promotions = pd.DataFrame({
        "promotion_id": ["PR-1", "PR-2"], "product_id": "P1", "customer_id": [None, "C9"],
        "start_date": pd.Timestamp("2026-01-05"), "end_date": pd.Timestamp("2026-01-11"), "discount_pct": 10.0,
        "source_file": "promotions/p.csv", "source_row": [2, 3], "ingested_at": pd.Timestamp("2026-01-07"),
    })
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        schemas.promotions_schema(["P1"], ["C1"]).validate(promotions, lazy=True)
    assert caught.value.failure_cases["failure_case"].tolist() == ["C9"]
    schemas.promotions_schema(["P1"], ["C1", "C9"]).validate(promotions, lazy=True)


def test_failure_examples_show_a_long_value_in_part():
    customers = pd.DataFrame({
        "customer_id": ["C1", "C1"], "customer_name": ["z" * 100_000, "Shop"], "channel": "Retail", "region": "Est",
        "source_file": "customers/c.csv", "source_row": [2, 3], "ingested_at": pd.Timestamp("2026-01-07"),
    })
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        schemas.CUSTOMERS.validate(customers.assign(customer_id=["z" * 100_000] * 2), lazy=True)
    count, examples = schemas.failure_summary(caught.value)
    assert count >= 1 and examples.map(len).to_numpy().max() < 300
    assert examples["failure_case"].str.endswith("(100,000 characters)").any()


def test_declared_series_columns_are_in_the_raw_and_regressor_contracts():
    source = {"source_file": "s.csv", "source_row": [2, 3], "ingested_at": pd.Timestamp("2026-01-01")}
    raw = pd.DataFrame({"unique_id": ["A", "A"], "ds": pd.to_datetime(["2024-01-01", "2024-01-08"]),
                        "y": [1.0, None], "price": [4.0, None], **source})
    schemas.series_schema(["price"]).validate(raw, lazy=True)
    with pytest.raises(pa.errors.SchemaErrors, match="price"):
        schemas.series_schema().validate(raw, lazy=True)  # undeclared: not a raw.series column
    with pytest.raises(pa.errors.SchemaErrors, match="price"):
        schemas.series_schema(["price"]).validate(raw.assign(price=[4.0, 1e16]), lazy=True)
    x = pd.DataFrame({"unique_id": ["A", "A"], "ds": raw["ds"], "is_future": [False, True],
                      "promo_depth": 0.0, "holiday_days": 0.0, "price": [4.0, None]})
    with pytest.raises(pa.errors.SchemaErrors, match="price"):
        schemas.regressors_schema(["price"]).validate(x, lazy=True)  # gold fills every value
    schemas.regressors_schema(["price"]).validate(x.fillna({"price": 4.0}), lazy=True)


def _many_series(n_series: int = 30, weeks: int = 8) -> pd.DataFrame:
    frames = [_gold().head(1).assign(unique_id=f"P{i:02d}", product_id=f"P{i:02d}") for i in range(n_series)]
    grid = pd.date_range("2026-01-05", periods=weeks, freq="W-MON")
    rows = pd.concat(frames, ignore_index=True).merge(pd.DataFrame({"ds": grid}), how="cross", suffixes=("_", ""))
    return rows.drop(columns="ds_").sort_values(["unique_id", "ds"], ignore_index=True)


def test_no_gaps_finds_a_gap_and_an_off_grid_date_in_the_last_series_only():
    schema = schemas.gold_schema(["product_id"], "W-MON")
    good = _many_series()
    schema.validate(good, lazy=True)
    # The last series starts late and ends early: no gap, on the grid.
    schema.validate(good.drop(index=[len(good) - 8, len(good) - 1]), lazy=True)
    for broken in (good.drop(index=len(good) - 3),  # a hole near the end of the last series
                   good.assign(ds=good["ds"].where(good.index != len(good) - 1, pd.Timestamp("2026-02-24")))):
        with pytest.raises(pa.errors.SchemaErrors) as caught:
            schema.validate(broken, lazy=True)
        cases = caught.value.failure_cases
        gaps = cases[cases["check"].astype(str).str.contains("without gaps")]
        # Exactly the rows of the broken series fail, found far from the start of the table.
        assert set(gaps["index"]) == set(broken.index[broken["unique_id"] == "P29"])
