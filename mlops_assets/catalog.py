"""The table catalog: one entry per warehouse table that an asset writes, and the one place its name lives.

Each entry holds the DuckDB name (the asset key is the same words: ``gold.regressors`` is ``gold/regressors``),
what the table is, its columns, its contract (the Pandera schema of ``schemas.py``, built at check time since it
can depend on the settings and on other tables) and the order its rows are stored in. The asset specs take their
description and column schema from here, the contract checks their schema and description, and
``docs/tables.md`` is generated from it (``python -m mlops_assets.catalog > docs/tables.md``).
No Dagster here: the wiring in ``defs/`` reads it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd
import pandera.pandas as pa

from mlops_assets import schemas
from mlops_assets.forecasting.eligible import ELIGIBLE_SQL
from mlops_assets.forecasting.metrics import METRIC_DESCRIPTIONS
from mlops_assets.monitoring.serving_requests import COLUMNS as REQUEST_COLUMNS
from mlops_assets.settings import Settings

# The name of every contract check: one per table, on the table's asset.
CONTRACT_CHECK = "matches_contract"


class Store(Protocol):
    """What a contract may read while it is built: the warehouse (ids that must exist, the history's sign)."""

    def read(self, table: str, *, missing_ok: bool = False) -> pd.DataFrame: ...

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame: ...


Contract = Callable[[Settings, Store], pa.DataFrameSchema]


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    contract: Contract
    contract_description: str
    # A failed blocking contract stops everything downstream of the table in the run.
    blocking: bool
    order_by: str = ""
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> list[str]:
        """The asset key's path: the schema and the table."""
        return self.name.split(".")

    def __str__(self) -> str:
        return self.name


def _fixed(schema: pa.DataFrameSchema) -> Contract:
    return lambda _settings, _store: schema


def _known_ids(build: Callable[..., pa.DataFrameSchema]) -> Contract:
    """A contract whose product and customer ids must be in the product and customer masters."""
    return lambda _settings, store: build(store.read("raw.products")["product_id"],
                                          store.read("raw.customers")["customer_id"])


def forecasts_clipped(settings: Settings, store: Store) -> bool:
    """Whether every series is clipped at 0, as ChampionForecaster decides it from the same history."""
    clip = settings.intervals.clip
    if clip != "auto":
        return clip == "always"
    negative = store.query(f"select count(*) as n from ({ELIGIBLE_SQL}) where y < 0").iloc[0]["n"]
    return int(negative) == 0


def _raw_contract_description(table: str) -> str:
    return f"raw.{table} matches its Pandera contract (types, nulls, ranges, unique keys, known ids)."


RAW_PRODUCTS = Table(
    "raw.products",
    "The product master: name, brand, category, launch and discontinuation dates.",
    _fixed(schemas.PRODUCTS), _raw_contract_description("products"), blocking=True,
)
RAW_CUSTOMERS = Table(
    "raw.customers",
    "The customer master: name, sales channel and region.",
    _fixed(schemas.CUSTOMERS), _raw_contract_description("customers"), blocking=True,
)
RAW_PROMOTIONS = Table(
    "raw.promotions",
    "Promotions by product (and customer, empty = all customers) with their discount; a"
    " promotion rejected for an unknown product or customer is taken back when it arrives.",
    _known_ids(schemas.promotions_schema), _raw_contract_description("promotions"), blocking=True,
)
RAW_SALES_ORDERS = Table(
    "raw.sales_orders",
    "Every sales order line ever received: one row per order and product; negative quantities"
    " are returns. Corrected lines replace the earlier version of the same order line; lines rejected for an"
    " unknown product or customer are taken back when it arrives.",
    _known_ids(schemas.sales_orders_schema), _raw_contract_description("sales_orders"), blocking=True,
)
RAW_SERIES = Table(
    "raw.series",
    "Pre-aggregated sales series (series id, period, value) for users who already have weekly or"
    " monthly sales; a missing value means 'not reported' and is kept as such. Columns declared in"
    " regressors.series_columns (a price, a promotion flag) are kept beside them, also in the rows after a"
    " series' last value that give their planned future.",
    lambda settings, _store: schemas.series_schema(settings.regressors.series_columns,
                                                   settings.regressors.file_statics),
    _raw_contract_description("series"), blocking=True,
)
# Bookkeeping of the raw layer, written with the raw tables (no asset of their own).
REJECTED_ROWS = "raw.rejected_rows"
READMITTED_ROWS = "raw.readmitted_rows"
INGESTED_FILES = "raw.ingested_files"

GOLD = Table(
    "gold.sales_data_for_forecast",
    "Sales per series and period, from each series' first sale: periods without order "
    "lines are zero sales; in series files a missing value is zero or interpolated (flagged "
    "`imputed`) as gold.missing_periods says. The incomplete last period is left out. The input of "
    "every model.",
    lambda settings, _store: schemas.gold_schema(settings.grain, settings.frequency),
    "One row per series and period, no gaps, no missing or infinite sales, shares in [0, 1].",
    blocking=True,
    order_by="unique_id, ds",
    columns={
        "unique_id": "Series id: the product id, or 'product_id/customer_id' at the product x customer grain.",
        "ds": "Start of the period (the Monday of the week by default).",
        "y": "Net units sold in the period (returns netted), or a series file's value; a period without one "
        "is 0 or interpolated, as gold.missing_periods says.",
        "revenue": "Sum of quantity x unit price.",
        "avg_unit_price": "Revenue / units when units > 0.",
        "promo_share": "Share of the period's gross units sold under an active promotion (0 to 1).",
        "imputed": "True where a series file had no value for the period and y was interpolated between its "
        "neighbours (gold.missing_periods: not_reported); not an actual.",
    },
)
SERIES_EXCLUDED = Table(
    "gold.series_excluded",
    "Series that are not forecast and why (too short, all zero, discontinued, no value "
    "at all, stale, dates that do not fit the frequency). Nothing leaves the forecast silently: "
    "a large share excluded warns in the log and in the excluded_share check.",
    _fixed(schemas.SERIES_EXCLUDED),
    "Every excluded series has exactly one row with a known reason code and a reason.",
    blocking=True,
    order_by="unique_id",
)
REGRESSORS = Table(
    "gold.regressors",
    "What the business knows about each series' periods, past and the next horizon: planned "
    "promotions' discount depth, public holidays and a series file's own declared columns "
    "(regressors.series_columns). The global model (LightGBM) uses them.",
    lambda settings, _store: schemas.regressors_schema(settings.regressors.series_columns),
    "One row per series and period, past and future; depths in percent, holiday counts.",
    blocking=True,
    order_by="unique_id, ds",
    columns={
        "is_future": "True for the horizon after the series' last period: values the business planned.",
        "promo_depth": "Mean over the period's days of the deepest promotion discount on the product, percent.",
        "holiday_days": "Public holidays in the period (settings.regressors.country).",
    },
)


def regressor_columns(settings: Settings) -> dict[str, str]:
    """gold.regressors' column descriptions, with the series file's columns the settings declare."""
    declared = {name: f"Column {name} of the series files, {kind}: "
                + ("future values from the rows after each series' last value (0 where none is given)."
                   if kind == "planned" else "after each cutoff, and in the forecast, its last known value.")
                for name, kind in settings.regressors.series_columns.items()}
    return {**REGRESSORS.columns, **declared}


BACKTEST = Table(
    "forecasting.backtest_forecasts",
    "Rolling-origin cross-validation of the model zoo on every eligible series: what each model "
    "would have forecast at each cutoff, next to what happened. Computed by bucket of series on the engine "
    "of settings.compute (local process pool or Dask). Skipped when its input is unchanged.",
    _fixed(schemas.BACKTEST_FORECASTS),
    "Backtest rows are unique and every forecast date is after its cutoff (no leakage).",
    blocking=True,
    order_by="unique_id, model, cutoff, ds",
)
EVALUATION = Table(
    "forecasting.series_evaluation",
    "Accuracy of every model on every series over all backtest windows: SMAPE (0-200, M4), MAE, "
    "RMSE, MASE, WAPE (%), bias; declared closed periods are not scored. Each materialization is one MLflow "
    "run in the experiment sales_forecast, with the selection metric (settings.selection.metric).",
    _fixed(schemas.SERIES_EVALUATION),
    "One row per series and model with metrics in range (SMAPE 0-200).",
    blocking=True,
    columns={"smape": schemas.SMAPE_DESCRIPTION, **{m: METRIC_DESCRIPTIONS[m] for m in ("mase", "rmse", "wape")}},
)
CHAMPIONS = Table(
    "forecasting.series_champions",
    "The per-series models: for each series, the model with the lowest mean backtest score on "
    "settings.selection.metric (SMAPE by default; ties to the simpler model), with the runner-up and the "
    "seasonal-naive SMAPE beside it. With "
    "selection.mode 'auto' (the default) per-series choice is used only when it held up on each series' last "
    "backtest window; otherwise every series gets the one model that did best overall.",
    _fixed(schemas.SERIES_CHAMPIONS),
    "Exactly one champion per series.",
    blocking=True,
    columns={"smape": schemas.SMAPE_DESCRIPTION},
)
FORECASTS = Table(
    "forecasting.forecasts",
    "The next horizon of every series, scored by loading models:/sales_forecast@champion (the "
    "registry round trip a batch job makes), one model group of it (at most settings.compute.bucket_series "
    "series) at a time, with 80% and 95% "
    "prediction intervals calibrated on the backtest "
    "(settings.intervals), clipped at zero unless the history has negative values (returns).",
    lambda settings, store: schemas.forecasts_schema(settings.interval_levels,
                                                     non_negative=forecasts_clipped(settings, store)),
    "One row per series and future period, inside ordered interval bounds; non-negative when "
    "forecasts are clipped at 0 (settings.intervals.clip).",
    blocking=True,
    order_by="unique_id, ds",
    columns={
        "model": "The model that made this row's numbers (the champion, unless it could not be served: then the "
        "fallback, and the champions_served check warns).",
        "champion": "The model chosen for the series in forecasting.series_champions.",
        "horizon_step": "Periods after the series' own last actual: above settings.horizon for a series that "
        "ended earlier than the others, so that every series reaches the common horizon end.",
    },
)

DRIFT_SUMMARY = Table(
    "monitoring.drift_summary",
    "One row per drift report ever made: when, which windows, the drift share and the "
    "drifted columns. History: rows are only appended.",
    _fixed(schemas.DRIFT_SUMMARY),
    "Every drift report row has ordered windows and a drift share between 0 and 1.",
    blocking=False,
)
FORECAST_HISTORY = Table(
    "monitoring.forecast_history",
    "Every forecast ever issued, with when it was issued and which model version made it. "
    "Append-only: a rerun of the same forecasts adds nothing and nothing is overwritten.",
    lambda settings, _store: schemas.forecast_history_schema(settings.interval_levels),
    "One row per series, period, model version and issue; forecasts non-negative.",
    blocking=False,
)
FORECAST_ACCURACY = Table(
    "monitoring.forecast_accuracy",
    "Every past forecast that actuals now cover, scored: SMAPE (0-200, M4) and interval "
    "coverage by series, by horizon step, by model version, and its trend over forecast issues. Forecasts "
    "the endpoint served from a version with no batch forecast of that period are scored too (source served).",
    lambda settings, _store: schemas.forecast_accuracy_schema(settings.interval_levels),
    "Scored forecasts have SMAPE in 0-200 and are for periods after their training data.",
    blocking=False,
    order_by="issued_at, unique_id, ds, model, model_version",
)
SERVING_REQUESTS = Table(
    "monitoring.serving_requests",
    "Every request the forecast endpoint (`make serve`) answered, from its inference log in "
    "serving/logs/ of the data directory: when, which model version, which series and horizon, the "
    "status and error, the latency. Keeps requests whose log file has since rotated away.",
    _fixed(schemas.SERVING_REQUESTS),
    "One row per request id; an error kind exactly on the requests that did not answer 200.",
    blocking=False,
    columns=REQUEST_COLUMNS,
)
SERVED_FORECASTS = Table(
    "monitoring.served_forecasts",
    "The forecasts the endpoint answered, once per series, period and model version (when "
    "first served), with the step ahead: scored against actuals by monitoring.forecast_accuracy where "
    "the batch history has no forecast of that version.",
    _fixed(schemas.SERVED_FORECASTS),
    "One row per series, period and model version served, with the step ahead.",
    blocking=False,
)

SALES_OVERALL = Table(
    "serving.sales_overall",
    "Actuals and forecasts side by side, one row per series, period and origin, with the series "
    "attributes and the forecast's intervals, model and version. Read it from other processes through "
    "exports/serving/sales_overall.parquet, replaced atomically.",
    lambda settings, _store: schemas.sales_overall_schema(settings.interval_levels),
    "One row per series, period and origin; every forecast row names its model version.",
    blocking=False,
    order_by="unique_id, ds, origin",
    columns={
        "origin": "'Train' for actual sales, 'Predict' for the champion's forecast.",
        "sales": "Units: actual net units (Train) or the point forecast (Predict).",
        "imputed": "True on a Train row whose value gold interpolated across a gap in a series file: not an "
        "actual.",
        "model_version": "Registered version of sales_forecast that made the forecast (Predict rows).",
    },
)


def _levels_clipped(settings: Settings, store: Store) -> bool:
    from mlops_assets.levels.forecast import non_negative

    negative = store.query("select count(*) as n from gold.sales_data_for_forecast where y < 0").iloc[0]["n"]
    return non_negative(int(negative) > 0, settings)


def _forecasts_by_level_contract(settings: Settings, store: Store) -> pa.DataFrameSchema:
    from mlops_assets.levels.schemas import forecasts_by_level_schema

    return forecasts_by_level_schema(settings.interval_levels, _levels_clipped(settings, store))


def _evaluation_by_level_contract(_settings: Settings, _store: Store) -> pa.DataFrameSchema:
    from mlops_assets.levels.schemas import EVALUATION_BY_LEVEL as SCHEMA

    return SCHEMA


# Written only with a hierarchy (order lines by default, docs/levels.md); no asset otherwise.
FORECASTS_BY_LEVEL = Table(
    "forecasting.forecasts_by_level",
    "The forecast of every level of the business (settings.hierarchy: total, category, brand and product by "
    "default) that adds up: each group equals the sum of its series for every reconciled method, with the "
    "intervals of settings.interval_levels. Base rows are each node's own forecast before reconciliation (a "
    "series' is its row of forecasting.forecasts, which stays the series' forecast of the registered model); "
    "is_default marks the method in use. With a hierarchy (order lines by default; docs/levels.md).",
    _forecasts_by_level_contract,
    "One row per node, method and future period, the bounds nested around y_hat; non-negative when the sales "
    "have no negative actual (settings.intervals.clip).",
    blocking=True,
    columns={
        "level": "The node's level: total, a level of settings.hierarchy.levels (category, category/brand), or "
        "the series' own (product, product/customer, series).",
        "unique_id": "The node: total, category/<c>, category/<c>/brand/<b>, or the series' own id.",
        "ds": "Start of the forecast period.",
        "method": "Base (each node's own forecast, not reconciled) or the reconciliation method: BottomUp, "
        "MinTrace(ols), MinTrace(wls_struct), TopDown(forecast_proportions).",
        "y_hat": "Forecast; for every reconciled method each group equals the sum of its series.",
        "lo_80": "Lower bound of the 80% interval (hierarchicalforecast's normality method; not recalibrated).",
        "hi_80": "Upper bound of the 80% interval.",
        "lo_95": "Lower bound of the 95% interval.",
        "hi_95": "Upper bound of the 95% interval.",
        "base_model": "The node's champion model (its base forecast); 'not forecast' for a series the product "
        "does not forecast (gold.series_excluded) and groups of such series.",
        "is_default": "The reconciliation in use (settings.hierarchy.reconciliation; auto: chosen on the "
        "backtest).",
    },
)
EVALUATION_BY_LEVEL = Table(
    "forecasting.evaluation_by_level",
    "How accurate each level's forecast was on the backtest windows, per reconciliation method: SMAPE "
    "(0-200, M4), MAE, RMSE, WAPE (%), the mean over the level's forecast nodes. The default method ('auto') "
    "is the one doing best here relative to BottomUp, averaged over the levels. With a hierarchy only.",
    _evaluation_by_level_contract,
    "One row per level and method, metrics in range (SMAPE 0-200).",
    blocking=True,
    columns={
        "level": "The level (as in forecasting.forecasts_by_level).",
        "method": "Base or the reconciliation method.",
        "smape": schemas.SMAPE_DESCRIPTION + "; the mean over the level's forecast nodes.",
        "mae": "Mean absolute error, the mean over the level's forecast nodes.",
        "rmse": "Root mean squared error, the mean over the level's forecast nodes.",
        "wape": "100 * sum|error| / sum|actual| per node and window, percent; the mean over the level's nodes.",
        "n_series": "Nodes of the level scored.",
        "n_windows": "Backtest windows scored.",
        "is_default": "The reconciliation in use.",
    },
)

SALES_OVERALL_BY_LEVEL = Table(
    "serving.sales_overall_by_level",
    "serving.sales_overall for every level of the hierarchy (total, each group, each series): one row per "
    "node, period and origin, the actuals (a group's summed from gold, its excluded series included) beside the "
    "coherent forecast (forecasting.forecasts_by_level's default method) with its intervals. A PNG per group in "
    "plots/levels/ of the data directory. Only with a hierarchy declared (docs/levels.md).",
    lambda settings, _store: schemas.sales_overall_by_level_schema(settings.interval_levels),
    "One row per node, period and origin; every forecast row names its reconciliation method.",
    blocking=False,
    order_by="unique_id, ds, origin",
    columns={
        "level": "The node's level, as in forecasting.forecasts_by_level (total, category, category/brand, "
        "product...).",
        "unique_id": "The node: total, category/<c>, category/<c>/brand/<b>, or the series' own id.",
        "origin": "'Train' for actuals, 'Predict' for the coherent forecast.",
        "sales": "Units: the node's actual (a group: the sum of all its series) or its forecast.",
        "imputed": "True on a Train row where the node's value (or one of its series') was interpolated by "
        "gold across a gap in a series file: not an actual.",
        "method": "The reconciliation method of the forecast (Predict rows): the default of "
        "forecasting.forecasts_by_level.",
        "model": "The node's own champion (base_model of forecasting.forecasts_by_level).",
    },
)
FORECAST_HISTORY_BY_LEVEL = Table(
    "monitoring.forecast_history_by_level",
    "Every coherent forecast of the levels ever issued (forecasting.forecasts_by_level's default method), "
    "with when it was issued. Append-only: a rerun of the same forecasts adds nothing. Only with a hierarchy "
    "declared.",
    lambda settings, _store: schemas.forecast_history_by_level_schema(settings.interval_levels),
    "One row per node, period, method and issue.",
    blocking=False,
    order_by="issued_at, unique_id, ds",
    columns={
        "level": "The node's level.",
        "model": "The node's own champion (base_model).",
        "method": "The reconciliation method that made the forecast (the default at issue).",
        "train_end": "The last period of actuals the forecast was made from.",
    },
)
FORECAST_ACCURACY_BY_LEVEL = Table(
    "monitoring.forecast_accuracy_by_level",
    "Every issued forecast of the levels that actuals now cover, scored like monitoring.forecast_accuracy "
    "(SMAPE 0-200, M4; interval coverage) against the node's actual (a group's summed from gold); the asset's "
    "metadata sums it up per level (SMAPE, WAPE). Only with a hierarchy declared.",
    lambda settings, _store: schemas.forecast_accuracy_by_level_schema(settings.interval_levels),
    "Scored forecasts have SMAPE in 0-200 and are for periods after their training data.",
    blocking=False,
    order_by="issued_at, unique_id, ds",
    columns={
        "level": "The node's level.",
        "y": "The node's actual: a group's the sum of all its series (excluded ones too).",
        "smape": schemas.SMAPE_DESCRIPTION,
    },
)

# Assets that are not warehouse tables, by the same dotted name: a report, the registered model, documents.
DRIFT_REPORT = "monitoring.drift_report"
MODEL = "registry.sales_forecast_model"
SERVING_OPENAPI = "registry.serving_openapi"
# Only with a hierarchy declared: the levels' reconciled forecasts, registered beside the model.
LEVELS_MODEL = "registry.levels_model"
EVIDENTLY_WORKSPACE = "monitoring.evidently_workspace"
# The drift check, which the retrain sensor follows.
DRIFT_CHECK = "drift_within_threshold"


def key(name: str) -> list[str]:
    """The asset key's path of a dotted name (``registry.sales_forecast_model``)."""
    return name.split(".")


# In dependency order: sales orders and promotions check their ids against products and customers.
RAW_TABLES = (RAW_PRODUCTS, RAW_CUSTOMERS, RAW_PROMOTIONS, RAW_SALES_ORDERS, RAW_SERIES)
TABLES = (
    *RAW_TABLES, GOLD, SERIES_EXCLUDED, REGRESSORS, BACKTEST, EVALUATION, CHAMPIONS, FORECASTS,
    DRIFT_SUMMARY, FORECAST_HISTORY, FORECAST_ACCURACY, SERVING_REQUESTS, SERVED_FORECASTS, SALES_OVERALL,
)
# Tables of a layer the settings turn on (settings.hierarchy); documented with the others.
OPT_IN_TABLES = (FORECASTS_BY_LEVEL, EVALUATION_BY_LEVEL, SALES_OVERALL_BY_LEVEL, FORECAST_HISTORY_BY_LEVEL,
                 FORECAST_ACCURACY_BY_LEVEL)
BY_NAME = {table.name: table for table in (*TABLES, *OPT_IN_TABLES)}


def raw(table: str) -> Table:
    """The raw table a landing folder feeds (``sales_orders`` -> raw.sales_orders)."""
    return BY_NAME[f"raw.{table}"]


def markdown() -> str:
    """docs/tables.md: every table, its asset, order, contract and columns."""
    lines = [
        "# Tables",
        "",
        "Every table the graph writes to the DuckDB warehouse (`data/warehouse.duckdb`; a Parquet snapshot of "
        "each in `data/exports/`). Generated from `mlops_assets/catalog.py`; a test keeps this file current.",
        "",
        "| table | asset | rows stored in order of | contract blocks downstream |",
        "| --- | --- | --- | --- |",
    ]
    for table in (*TABLES, *OPT_IN_TABLES):
        lines.append(f"| [`{table.name}`](#{table.name.replace('.', '')}) | `{'/'.join(table.key)}` | "
                     f"{table.order_by or 'as its step writes them'} | {'yes' if table.blocking else 'no (warns)'} |")
    for table in (*TABLES, *OPT_IN_TABLES):
        lines += ["", f"## {table.name}", "", table.description, "", f"Contract: {table.contract_description}"]
        if table.columns:
            lines += ["", "| column | meaning |", "| --- | --- |"]
            lines += [f"| `{name}` | {text} |" for name, text in table.columns.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
