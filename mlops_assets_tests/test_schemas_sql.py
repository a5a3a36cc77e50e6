"""A contract evaluated by DuckDB reaches the verdicts pandera reaches in pandas, check by check, on the same table."""

from __future__ import annotations

import duckdb
import pandas as pd
import pandera.pandas as pa
import pytest

from mlops_assets import schemas, warehouse
from mlops_assets.schemas_sql import _DUCKDB_TYPES, validate_in_duckdb


def _gold(n_series: int = 20, weeks: int = 6) -> pd.DataFrame:
    ids = [f"P{i:02d}" for i in range(n_series)]
    grid = pd.date_range("2026-01-05", periods=weeks, freq="W-MON")
    frame = pd.DataFrame({"unique_id": ids}).merge(pd.DataFrame({"ds": grid}), how="cross")
    return frame.assign(y=1.0, revenue=2.0, avg_unit_price=2.0, promo_share=0.5, imputed=False,
                        product_id=frame["unique_id"], product_name="Etorki 200g", brand="Etorki",
                        category="Hard cheese")


def _set(frame: pd.DataFrame, column: str, value: object, row: int = -1) -> pd.DataFrame:
    """``frame`` with one cell changed, by default in the last row: far from the start of the table."""
    frame = frame.copy()
    frame.loc[frame.index[row], column] = value
    return frame


def _sql_verdict(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> tuple[set[str], pd.DataFrame]:
    con = duckdb.connect()
    con.execute("create schema t")
    warehouse.replace_table(con, "t.table", frame)
    count, examples = validate_in_duckdb(con, "t.table", schema)
    checks = set(examples["check"]) if count else set()
    assert (count == 0) == (not checks)
    return checks, examples


def _pandas_verdict(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> set[str]:
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        return set(err.failure_cases["check"].astype(str))
    return set()


GOLD = schemas.gold_schema(["product_id"], "W-MON")
GOOD = _gold()
LAST = GOOD["unique_id"] == "P19"
BACKTEST = pd.DataFrame({"unique_id": "P1", "cutoff": pd.Timestamp("2026-01-03"),
                         "ds": pd.to_datetime(["2026-01-04", "2026-01-05"]), "y": [0.0, 5.0], "model": "Naive",
                         "y_hat": [0.0, 4.0], "closed": [True, False]})
ORDERS = pd.DataFrame({
    "order_id": ["SO-1", "SO-2"], "order_date": pd.to_datetime(["2026-01-05", "2026-01-06"]),
    "customer_id": ["C1", "C1"], "product_id": ["P1", "P1"], "quantity": [2.0, -1.0],
    "unit_price": [3.0, 3.0], "source_file": "sales_orders/a.csv", "source_row": [2, 3],
    "ingested_at": pd.Timestamp("2026-01-07"),
})
REQUESTS = pd.DataFrame({"request_id": ["r1", "r2"], "requested_at": pd.Timestamp("2026-01-07"),
                         "model_version": ["3", "3"], "status": [200, 400], "error_kind": ["none", "bad_input"],
                         "n_rows": 1, "forecast_rows": [4, 0], "latency_ms": 2.0})
FORECASTS = pd.DataFrame({
    "unique_id": ["P1"], "ds": pd.to_datetime(["2026-02-02"]), "model": ["Naive"], "y_hat": [5.0],
    "lo_80": [4.0], "hi_80": [7.0], "lo_95": [1.0], "hi_95": [9.0], "model_version": ["1"],
})

CASES = {
    "good gold": (GOLD, GOOD),
    "gap in the last series": (GOLD, GOOD.drop(index=GOOD.index[LAST][2])),
    "off-grid date in the last row": (GOLD, _set(GOOD, "ds", pd.Timestamp("2026-02-10"))),
    "missing y": (GOLD, _set(GOOD, "y", float("nan"))),
    "infinite revenue": (GOLD, _set(GOOD, "revenue", float("inf"))),
    "share above 1": (GOLD, _set(GOOD, "promo_share", 1.5)),
    "repeated period": (GOLD, pd.concat([GOOD, GOOD.tail(1)], ignore_index=True)),
    "extra column": (GOLD, GOOD.assign(extra="x")),
    "missing column": (GOLD, GOOD.drop(columns="revenue")),
    "y of the wrong type": (GOLD, GOOD.assign(y=1)),
    "good backtest": (schemas.BACKTEST_FORECASTS, BACKTEST),
    "backtest before closures": (schemas.BACKTEST_FORECASTS, BACKTEST.drop(columns="closed")),
    "leakage and an open closure": (schemas.BACKTEST_FORECASTS,
                                    BACKTEST.assign(cutoff=pd.Timestamp("2026-01-04"), y_hat=[3.0, 4.0])),
    "crossed bounds": (schemas.forecasts_schema(), _set(FORECASTS, "lo_80", 6.0)),
    "unknown ids and a repeated line": (schemas.sales_orders_schema(["P2"], ["C1"]), ORDERS.assign(order_id="SO-1")),
    "good requests": (schemas.SERVING_REQUESTS, REQUESTS),
    "bad version and error kind": (schemas.SERVING_REQUESTS,
                                   REQUESTS.assign(model_version=["3", "v3"], error_kind="none")),
    "repeated product": (schemas.PRODUCTS, pd.DataFrame({
        "product_id": ["P1", "P2", "P1"], "product_name": "Etorki", "brand": "Etorki", "category": "Cheese",
        "launch_date": pd.NaT, "discontinued_date": pd.NaT, "source_file": "products/p.csv", "source_row": [2, 3, 4],
        "ingested_at": pd.Timestamp("2026-01-07")})),
    "empty reason": (schemas.SERIES_EXCLUDED, pd.DataFrame({
        "unique_id": ["P1"], "reason_code": ["stale"], "reason": [""], "n_periods": [3],
        "first_ds": pd.Timestamp("2026-01-05"), "last_ds": pd.Timestamp("2026-01-19")})),
}


@pytest.mark.parametrize("case", CASES)
def test_duckdb_and_pandas_reach_the_same_verdict_check_by_check(case):
    schema, frame = CASES[case]
    expected = _pandas_verdict(schema, frame)
    assert (not expected) == case.startswith(("good", "backtest before"))
    found, _ = _sql_verdict(schema, frame)
    assert found == expected


def test_a_failure_is_located_by_series_and_period():
    _, examples = _sql_verdict(GOLD, _set(GOOD, "promo_share", 1.5))
    (row,) = examples.to_dict("records")
    assert row["column"] == "promo_share" and row["failure_case"] == "1.5"
    assert (row["unique_id"], row["ds"]) == ("P19", "2026-02-09")


def _empty_table(schema: pa.DataFrameSchema) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="string" if str(c.dtype) == "str" else str(c.dtype))
                         for name, c in schema.columns.items()})


@pytest.mark.parametrize("schema", [
    schemas.sales_orders_schema(["P1"], ["C1"]), schemas.PRODUCTS, schemas.CUSTOMERS,
    schemas.promotions_schema(["P1"], ["C1"]), schemas.series_schema(["price"]), schemas.REJECTED_ROWS,
    schemas.gold_schema(["product_id", "customer_id"], "D"), schemas.regressors_schema(["price"]),
    schemas.SERIES_EXCLUDED, schemas.BACKTEST_FORECASTS, schemas.SERIES_EVALUATION, schemas.SERIES_CHAMPIONS,
    schemas.forecasts_schema(), schemas.sales_overall_schema(), schemas.forecast_history_schema(),
    schemas.forecast_accuracy_schema(), schemas.DRIFT_SUMMARY, schemas.SERVING_REQUESTS, schemas.SERVED_FORECASTS,
], ids=lambda s: s.name)
def test_every_contract_has_an_sql_form(schema):
    assert all(str(c.dtype) in _DUCKDB_TYPES or c.coerce for c in schema.columns.values())
    found, _ = _sql_verdict(schema, _empty_table(schema))
    assert found == set()


def test_a_custom_check_without_sql_form_is_an_error_not_a_pass():
    schema = pa.DataFrameSchema({"y": pa.Column(float)}, checks=[pa.Check(lambda df: df["y"] > 0, error="y > 0")])
    with pytest.raises(NotImplementedError, match="y > 0"):
        _sql_verdict(schema, pd.DataFrame({"y": [1.0]}))
