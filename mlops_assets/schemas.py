"""Pandera contracts of every table, one function or constant per table, named after it.

Asset checks validate lazily (all failures at once) with these; the checks on raw and gold are blocking.
A large table is validated by DuckDB with the same contracts (schemas_sql.py): a custom check needs its SQL
form beside its pandas one (sql_form), or the check fails with NotImplementedError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import duckdb
import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.pandas import Check, Column, DataFrameSchema

# Plausibility limits: a number beyond them is a unit or export error, not a sale (a quantity of 1e300 made
# revenue infinite and published an interval of 6e298). Below VALUE_LIMIT, float64 still counts single units
# exactly, so sums stay exact.
QUANTITY_LIMIT = 1e9  # units on one order line, either sign (negative = return)
PRICE_LIMIT = 1e6  # price of one unit
VALUE_LIMIT = 1e15  # any period value: sales, revenue, a forecast and its interval bounds, an error

SMAPE_DESCRIPTION = "SMAPE on the M4 scale: 0 to 200, 200*|y-y_hat|/(|y|+|y_hat|) averaged, 0/0 counted as 0"

_STR = Column(str, nullable=False)
_OPT_STR = Column(str, nullable=True, required=False)
_DATE = Column("datetime64[ns]", nullable=False)
_OPT_DATE = Column("datetime64[ns]", nullable=True)
_SOURCE = {
    "source_file": Column(str, nullable=False),
    "source_row": Column(int, Check.ge(1), nullable=False),
    "ingested_at": Column("datetime64[ns]", nullable=False),
}


def sql_form(check: Check, predicate: str | Callable[[list[str]], str] | None = None,
             failing_rows: Callable[[duckdb.DuckDBPyConnection, str], str] | None = None) -> Check:
    """Give a custom check the SQL form that validates a large table in DuckDB (schemas_sql.py).

    ``predicate``: true where a row passes, over the table's columns (or a function of the column names, for a
    check on an optional column). ``failing_rows(con, table)``: a query of the failing rows, for checks across
    rows. Both forms live next to the pandas form, and tests hold them to the same verdicts.
    """
    check.sql_predicate = predicate
    check.sql_failing_rows = failing_rows
    return check


def _within(limit: float, low: float | None = None) -> Check:
    """Finite and inside [low, limit] (low default: -limit); infinity and NaN-free overflow fail."""
    low = -limit if low is None else low
    return Check.in_range(low, limit, error=f"finite and within {low:g} to {limit:g} (schemas.py limits)")


def _known(column: str, ids: Iterable[str] | None) -> list[Check]:
    if ids is None:
        return []
    allowed = sorted(set(ids))
    return [Check.isin(allowed, error=f"{column} must exist in its reference table")]


def sales_orders_schema(product_ids: Iterable[str] | None = None, customer_ids: Iterable[str] | None = None):
    return DataFrameSchema(
        {
            "order_id": _STR,
            "order_date": _DATE,
            "customer_id": Column(str, _known("customer_id", customer_ids), nullable=False),
            "product_id": Column(str, _known("product_id", product_ids), nullable=False),
            "quantity": Column(float, _within(QUANTITY_LIMIT), nullable=False),
            "unit_price": Column(float, _within(PRICE_LIMIT, 0), nullable=False),
            **_SOURCE,
        },
        unique=["order_id", "product_id"],
        strict=True,
        name="raw.sales_orders",
    )


PRODUCTS = DataFrameSchema(
    {
        "product_id": Column(str, unique=True, nullable=False),
        "product_name": _STR,
        "brand": _STR,
        "category": _STR,
        "launch_date": _OPT_DATE,
        "discontinued_date": _OPT_DATE,
        **_SOURCE,
    },
    strict=True,
    name="raw.products",
)

CUSTOMERS = DataFrameSchema(
    {
        "customer_id": Column(str, unique=True, nullable=False),
        "customer_name": _STR,
        "channel": _STR,
        "region": _STR,
        **_SOURCE,
    },
    strict=True,
    name="raw.customers",
)


def promotions_schema(product_ids: Iterable[str] | None = None,
                      customer_ids: Iterable[str] | None = None) -> DataFrameSchema:
    return DataFrameSchema(
        {
            "promotion_id": Column(str, unique=True, nullable=False),
            "product_id": Column(str, _known("product_id", product_ids), nullable=False),
            # Empty means every customer; a customer it names must exist.
            "customer_id": Column(str, _known("customer_id", customer_ids), nullable=True),
            "start_date": _DATE,
            "end_date": _DATE,
            "discount_pct": Column(float, Check.in_range(0, 100), nullable=False),
            **_SOURCE,
        },
        checks=[sql_form(Check(lambda df: df["end_date"] >= df["start_date"], error="end_date >= start_date"),
                         "end_date >= start_date")],
        strict=True,
        name="raw.promotions",
    )


def series_schema(regressors: Iterable[str] = (), texts: Iterable[str] = ()) -> DataFrameSchema:
    """raw.series, with the numeric columns declared in settings.regressors.series_columns and the text ones of
    settings.regressors.statics."""
    return DataFrameSchema(
        {
            "unique_id": _STR,
            "ds": _DATE,
            # A missing value is kept as "not reported"; the gold layer decides what it means.
            "y": Column(float, _within(VALUE_LIMIT), nullable=True),
            "product_name": _OPT_STR,
            "brand": _OPT_STR,
            "category": _OPT_STR,
            # Not required: rows of files gone from the landing zone before a column was declared lack it.
            **{name: Column(float, _within(VALUE_LIMIT), nullable=True, required=False) for name in regressors},
            **dict.fromkeys(texts, _OPT_STR),
            **_SOURCE,
        },
        unique=["unique_id", "ds"],
        strict=True,
        name="raw.series",
    )


REJECTED_ROWS = DataFrameSchema(
    {
        "table_name": Column(str, Check.isin(["sales_orders", "products", "customers", "promotions", "series"])),
        "source_file": _STR,
        "source_row": Column(int, Check.ge(1)),
        "column_name": Column(str, nullable=True),
        "reason": Column(str, Check.str_length(min_value=1)),
        "raw_record": _STR,
        "rejected_at": _DATE,
    },
    strict=True,
    name="raw.rejected_rows",
)


def _period_grid(ds: pd.Series, frequency: str) -> pd.DatetimeIndex:
    """Every period of ``frequency`` from the earliest to the latest date: one grid for all series."""
    return pd.date_range(ds.min(), ds.max(), freq=frequency) if len(ds) else pd.DatetimeIndex([])


def _no_gaps(frequency: str) -> Check:
    """Every series has one row per period from its first to its last: no hole in the index.

    Exact and vectorized: a date's position on one shared grid (searchsorted); a date off the grid fails, and a
    series is complete when it has exactly last - first + 1 rows.
    """

    def check(df: pd.DataFrame) -> pd.Series:
        grid = _period_grid(df["ds"].dropna(), frequency)
        if grid.empty:
            return pd.Series(False, index=df.index)
        positions = grid.searchsorted(df["ds"])
        on_grid = pd.Series(grid[np.minimum(positions, len(grid) - 1)] == df["ds"].to_numpy(), index=df.index)
        by_series = pd.Series(positions, index=df.index).groupby(df["unique_id"], sort=False)
        span = by_series.transform("max") - by_series.transform("min") + 1
        all_on_grid = on_grid.groupby(df["unique_id"], sort=False).transform("all")
        return by_series.transform("size").eq(span) & all_on_grid

    def failing_rows(con: duckdb.DuckDBPyConnection, table: str) -> str:
        lo, hi = con.execute(f"select min(ds), max(ds) from {table}").fetchall()[0]
        grid = _period_grid(pd.Series([lo, hi]).dropna(), frequency)
        con.register("_period_grid", pd.DataFrame({"ds": grid, "pos": range(len(grid))}))
        return (f"select t.* from {table} t join ("
                f" select s.unique_id from {table} s left join _period_grid g on s.ds = g.ds group by s.unique_id"
                f" having count(*) != coalesce(max(g.pos) - min(g.pos) + 1, -1) or count(g.pos) != count(*)"
                f") bad using (unique_id)")

    return sql_form(Check(check, error=f"each series has one row per {frequency} period, without gaps"),
                    failing_rows=failing_rows)


def gold_schema(grain: list[str], frequency: str) -> DataFrameSchema:
    columns = {
        "unique_id": _STR,
        "ds": _DATE,
        "y": Column(float, _within(VALUE_LIMIT), nullable=False),
        "revenue": Column(float, _within(VALUE_LIMIT), nullable=True),
        "avg_unit_price": Column(float, _within(PRICE_LIMIT, 0), nullable=True),
        "promo_share": Column(float, Check.in_range(0, 1), nullable=False),
        # True where a series file had no value and y was interpolated (gold.missing_periods: not_reported).
        "imputed": Column(bool, nullable=False, required=False),
        "product_id": _STR,
        "product_name": Column(str, nullable=True),
        "brand": Column(str, nullable=True),
        "category": Column(str, nullable=True),
    }
    if "customer_id" in grain:
        columns |= {name: Column(str, nullable=True) for name in ("customer_name", "channel", "region")}
        columns["customer_id"] = _STR
    return DataFrameSchema(
        columns,
        checks=[_no_gaps(frequency)],
        unique=["unique_id", "ds"],
        strict=True,
        name="gold.sales_data_for_forecast",
    )


def regressors_schema(series_columns: Iterable[str] = ()) -> DataFrameSchema:
    """gold.regressors, with the series file's declared columns (settings.regressors.series_columns)."""
    return DataFrameSchema(
        {
            "unique_id": _STR,
            "ds": _DATE,
            "is_future": Column(bool, nullable=False),
            "promo_depth": Column(float, Check.in_range(0, 100), nullable=False),
            "holiday_days": Column(float, Check.in_range(0, 366), nullable=False),
            **{name: Column(float, _within(VALUE_LIMIT), nullable=False) for name in series_columns},
        },
        unique=["unique_id", "ds"],
        strict=True,
        name="gold.regressors",
    )


SERIES_EXCLUDED = DataFrameSchema(
    {
        "unique_id": Column(str, unique=True),
        "reason_code": Column(str, Check.isin(["too_short", "all_zero", "discontinued", "missing_values",
                                                     "stale", "wrong_frequency"])),
        "reason": Column(str, Check.str_length(min_value=1)),
        "n_periods": Column(int, Check.ge(0)),
        "first_ds": _OPT_DATE,
        "last_ds": _OPT_DATE,
    },
    strict=True,
    name="gold.series_excluded",
)

BACKTEST_FORECASTS = DataFrameSchema(
    {
        "unique_id": _STR,
        "cutoff": _DATE,
        "ds": _DATE,
        "y": Column(float, _within(VALUE_LIMIT), nullable=False),
        "model": _STR,
        # A model that explodes on one series is judged by its metrics and not chosen; it must not stop
        # the chain. What is published (forecasts, intervals, sales_overall) is bounded below.
        "y_hat": Column(float, nullable=True),
        # Optional so that a backtest stored before closures existed still validates.
        "closed": Column(bool, nullable=False, required=False,
                         description="a declared closure (settings.closed): forecast 0, not scored"),
    },
    checks=[
        sql_form(Check(lambda df: df["ds"] > df["cutoff"], error="no leakage: every forecast ds is after its cutoff"),
                 "ds > cutoff"),
        sql_form(Check(lambda df: (df["y_hat"] == 0) | ~df["closed"] if "closed" in df.columns
                       else df["y_hat"].notna() | True, error="a closed period is forecast as 0"),
                 lambda columns: "y_hat = 0 or not closed" if "closed" in columns else "true"),
    ],
    unique=["unique_id", "model", "cutoff", "ds"],
    strict=True,
    name="forecasting.backtest_forecasts",
)

SERIES_EVALUATION = DataFrameSchema(
    {
        "unique_id": _STR,
        "model": _STR,
        "smape": Column(float, Check.in_range(0, 200), nullable=True, description=SMAPE_DESCRIPTION),
        "mae": Column(float, Check.ge(0), nullable=True),
        "rmse": Column(float, Check.ge(0), nullable=True),
        "mase": Column(float, Check.ge(0), nullable=True,
                       description="MAE over the in-sample seasonal naive MAE before each cutoff; NaN: no scale"),
        "wape": Column(float, Check.ge(0), nullable=True,
                       description="100 * sum|y - y_hat| / sum|y| per window, percent; NaN: all actuals 0"),
        "bias": Column(float, nullable=True),
        "n_windows": Column(int, Check.ge(1)),
    },
    unique=["unique_id", "model"],
    strict=True,
    name="forecasting.series_evaluation",
)

SERIES_CHAMPIONS = DataFrameSchema(
    {
        "unique_id": Column(str, unique=True),
        "model": _STR,
        "smape": Column(float, Check.in_range(0, 200), nullable=True, description=SMAPE_DESCRIPTION),
        "runner_up": Column(str, nullable=True),
        "runner_up_smape": Column(float, Check.in_range(0, 200), nullable=True),
        "seasonal_naive_smape": Column(float, Check.in_range(0, 200), nullable=True),
        "metric": Column(str, Check.isin(["smape", "mase", "rmse", "wape"]),
                         description="settings.selection.metric: what chose the model"),
        "score": Column(float, Check.ge(0), nullable=True, description="the model's mean backtest score on `metric`"),
    },
    checks=[sql_form(Check(lambda df: (df["metric"] != "smape") | df["score"].isna()
                           | ((df["score"] - df["smape"]).abs() < 1e-9), error="with metric smape, score is the SMAPE"),
                     "metric != 'smape' or score is null or abs(score - smape) < 1e-9")],
    strict=True,
    name="forecasting.series_champions",
)


def _bounds(levels: Iterable[int], non_negative: bool = True) -> dict[str, Column]:
    low = 0 if non_negative else None
    cols = {}
    for level in levels:
        cols[f"lo_{level}"] = Column(float, _within(VALUE_LIMIT, low), nullable=False)
        cols[f"hi_{level}"] = Column(float, _within(VALUE_LIMIT, low), nullable=False)
    return cols


def _ordered_bounds(levels: Iterable[int]) -> list[Check]:
    checks = []
    for level in levels:
        lo, hi = f"lo_{level}", f"hi_{level}"
        checks.append(sql_form(
            Check(lambda df, lo=lo, hi=hi: (df[lo] <= df["y_hat"] + 1e-9) & (df["y_hat"] <= df[hi] + 1e-9),
                  error=f"{lo} <= y_hat <= {hi}"),
            f"{lo} <= y_hat + 1e-9 and y_hat <= {hi} + 1e-9"))
    return checks


def forecasts_schema(levels: Iterable[int] = (80, 95), non_negative: bool = True) -> DataFrameSchema:
    """``non_negative=False`` where forecasts are not clipped at 0 (settings.intervals.clip)."""
    levels = list(levels)
    return DataFrameSchema(
        {
            "unique_id": _STR,
            "ds": _DATE,
            "model": _STR,
            "y_hat": Column(float, _within(VALUE_LIMIT, 0 if non_negative else None), nullable=False),
            **_bounds(levels, non_negative),
            "model_version": _STR,
        },
        checks=_ordered_bounds(levels),
        unique=["unique_id", "ds"],
        strict=False,
        name="forecasting.forecasts",
    )


def sales_overall_schema(levels: Iterable[int] = (80, 95)) -> DataFrameSchema:
    bounds = {}
    for level in levels:
        bounds[f"lo_{level}"] = Column(float, _within(VALUE_LIMIT), nullable=True)
        bounds[f"hi_{level}"] = Column(float, _within(VALUE_LIMIT), nullable=True)
    return DataFrameSchema(
        {
            "unique_id": _STR,
            "ds": _DATE,
            "origin": Column(str, Check.isin(["Train", "Predict"])),
            "sales": Column(float, _within(VALUE_LIMIT), nullable=False),
            **bounds,
            "model": Column(str, nullable=True),
            "model_version": Column(str, nullable=True),
        },
        checks=[
            sql_form(Check(lambda df: (df["origin"] == "Train") | df["model_version"].notna(),
                           error="every Predict row names its model version"),
                     "origin = 'Train' or model_version is not null"),
        ],
        unique=["unique_id", "ds", "origin"],
        strict=False,
        name="serving.sales_overall",
    )


def failure_summary(error: pa.errors.SchemaErrors, limit: int = 20) -> tuple[int, pd.DataFrame]:
    """Number of failures and the first examples, in a shape that reads well in Dagster metadata."""
    cases = error.failure_cases.copy()
    keep = [c for c in ("schema_context", "column", "check", "failure_case", "index") if c in cases.columns]
    examples = cases[keep].head(limit).astype(str)
    # A failing value is shown in part: a 20 MB cell must not become a 20 MB check event.
    examples = examples.map(lambda v: v if len(v) <= 200 else v[:200] + f"... ({len(v):,} characters)")
    return len(cases), examples


def _history_columns(levels: Iterable[int]) -> dict[str, Column]:
    # No sign check: forecasts of series with returns are not clipped at 0 (settings.intervals.clip).
    bounds = {}
    for level in levels:
        bounds[f"lo_{level}"] = Column(float, _within(VALUE_LIMIT), nullable=True)
        bounds[f"hi_{level}"] = Column(float, _within(VALUE_LIMIT), nullable=True)
    return {
        "unique_id": _STR,
        "ds": _DATE,
        "model": _STR,
        "model_version": _STR,
        "y_hat": Column(float, _within(VALUE_LIMIT), nullable=False),
        **bounds,
        "train_end": Column("datetime64[ns]", nullable=True, coerce=True),
        "issued_at": Column("datetime64[ns]", nullable=False, coerce=True),
        "horizon_step": Column(int, Check.ge(1)),
    }


def forecast_history_schema(levels: Iterable[int] = (80, 95)) -> DataFrameSchema:
    return DataFrameSchema(
        _history_columns(levels),
        unique=["unique_id", "ds", "model_version", "issued_at"],
        strict=False,
        name="monitoring.forecast_history",
    )


def forecast_accuracy_schema(levels: Iterable[int] = (80, 95)) -> DataFrameSchema:
    return DataFrameSchema(
        {
            **_history_columns(levels),
            "y": Column(float, _within(VALUE_LIMIT), nullable=False),
            "abs_error": Column(float, _within(2 * VALUE_LIMIT, 0)),
            "smape": Column(float, Check.in_range(0, 200), description=SMAPE_DESCRIPTION),
        },
        checks=[sql_form(Check(lambda df: df["ds"] > df["train_end"].fillna(pd.Timestamp.min),
                               error="a scored forecast is for a period after its model's training data"),
                         "train_end is null or ds > train_end")],
        unique=["unique_id", "ds", "model_version", "issued_at"],
        strict=False,
        name="monitoring.forecast_accuracy",
    )


# The levels' tables (written only with settings.hierarchy): a node and its level instead of a model version.
def _level_history_columns(levels: Iterable[int]) -> dict[str, Column]:
    columns = _history_columns(levels)
    del columns["model_version"]
    return {"level": _STR, **columns, "method": _STR}


def forecast_history_by_level_schema(levels: Iterable[int] = (80, 95)) -> DataFrameSchema:
    return DataFrameSchema(
        _level_history_columns(levels),
        unique=["unique_id", "ds", "method", "issued_at"],
        strict=False,
        name="monitoring.forecast_history_by_level",
    )


def forecast_accuracy_by_level_schema(levels: Iterable[int] = (80, 95)) -> DataFrameSchema:
    scored = forecast_accuracy_schema(levels)
    return DataFrameSchema(
        {**_level_history_columns(levels), **{c: scored.columns[c] for c in ("y", "abs_error", "smape")}},
        checks=scored.checks,
        unique=["unique_id", "ds", "method", "issued_at"],
        strict=False,
        name="monitoring.forecast_accuracy_by_level",
    )


def sales_overall_by_level_schema(levels: Iterable[int] = (80, 95)) -> DataFrameSchema:
    overall = sales_overall_schema(levels)
    columns = {c: overall.columns[c] for c in overall.columns if c != "model_version"}
    return DataFrameSchema(
        {"level": _STR, **columns, "method": Column(str, nullable=True)},
        checks=[sql_form(Check(lambda df: (df["origin"] == "Train") | df["method"].notna(),
                               error="every Predict row names its reconciliation method"),
                         "origin = 'Train' or method is not null")],
        unique=["unique_id", "ds", "origin"],
        strict=False,
        name="serving.sales_overall_by_level",
    )


DRIFT_SUMMARY = DataFrameSchema(
    {
        "reported_at": Column("datetime64[ns]", coerce=True),
        "reference_start": _DATE,
        "reference_end": _DATE,
        "current_start": _DATE,
        "current_end": _DATE,
        "drift_share": Column(float, Check.in_range(0, 1)),
        "drifted_columns": Column(str, nullable=True),
        "n_columns": Column(int, Check.ge(1)),
        "method": _STR,
    },
    checks=[sql_form(Check(lambda df: df["reference_end"] < df["current_start"],
                           error="the reference window comes first"), "reference_end < current_start")],
    strict=False,
    name="monitoring.drift_summary",
)


SERVING_REQUESTS = DataFrameSchema(
    {
        "request_id": _STR,
        "requested_at": _DATE,
        "model_version": Column(str, Check.str_matches(r"^\d+$"), nullable=False),
        "status": Column(int, Check.in_range(100, 599)),
        "error_kind": _STR,
        "n_rows": Column(int, Check.ge(0)),
        "forecast_rows": Column(int, Check.ge(0)),
        "latency_ms": Column(float, Check.ge(0)),
    },
    checks=[
        sql_form(Check(lambda df: (df["status"] == 200) == (df["error_kind"] == "none"),
                       error="a request has an error kind exactly when it did not answer 200"),
                 "(status = 200) = (error_kind = 'none')"),
        sql_form(Check(lambda df: (df["status"] == 200) | (df["forecast_rows"] == 0),
                       error="a failed request returned no forecast rows"),
                 "status = 200 or forecast_rows = 0"),
    ],
    unique=["request_id"],
    strict=False,
    name="monitoring.serving_requests",
)


SERVED_FORECASTS = DataFrameSchema(
    {
        "unique_id": _STR,
        "ds": _DATE,
        "model": _STR,
        "model_version": Column(str, Check.str_matches(r"^\d+$"), nullable=False),
        "y_hat": Column(float, nullable=False),
        "issued_at": _DATE,
        "horizon_step": Column(int, Check.ge(1)),
        "request_id": _STR,
    },
    unique=["unique_id", "ds", "model_version"],
    strict=False,
    name="monitoring.served_forecasts",
)
