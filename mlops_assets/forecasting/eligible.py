"""The eligible gold history as SQL, and the fingerprints that tell whether a forecasting step's inputs changed.

Every fingerprint is computed inside DuckDB, order-free, so the run process never holds the history.
"""

from __future__ import annotations

import hashlib

import duckdb

from mlops_assets.forecasting.zoo import (
    COMBINATION,
    GLOBAL_MODEL,
    STATIC_PREFIX,
    declared_drivers,
    default_models,
    unused_drivers,
)
from mlops_assets.gold.regressors import promotions_planned
from mlops_assets.settings import Settings
from mlops_assets.warehouse import table_exists

# The gold series that can be forecast, as SQL: the heavy steps let DuckDB cut it by bucket of series.
GOLD_TABLE = "gold.sales_data_for_forecast"
# A series file's own static attributes (regressors.statics beyond gold's attributes) stay in the raw layer.
SERIES_TABLE = "raw.series"
ELIGIBLE_SQL = (
    "select unique_id, ds, y from gold.sales_data_for_forecast "
    "where unique_id not in (select unique_id from gold.series_excluded)"
)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def eligible_summary(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    """Series count and an order-free fingerprint of the eligible history."""
    n, rows, hashed = con.execute(
        f"select count(distinct unique_id), count(*), coalesce(sum(hash(unique_id::varchar, ds, y))::varchar, '') "
        f"from ({ELIGIBLE_SQL})"
    ).fetchone()
    return int(n), _digest(f"{rows}|{hashed}")


def run_models(con: duckdb.DuckDBPyConnection, settings: Settings) -> tuple[list[str], str | None]:
    """The models a run backtests (the default zoo gains the global model when drivers are declared: planned
    promotions in gold.regressors or declared series columns) and, when the user's models leave the drivers
    unused, what to say."""
    drivers = declared_drivers(settings, promotions_planned(con))
    models = default_models(settings, drivers)
    return models, unused_drivers(models, drivers)


def regressors_sql(con: duckdb.DuckDBPyConnection, settings: Settings, models: list[str]) -> str | None:
    """gold.regressors' columns in settings.regressors.use, as SQL, when a model of the list uses them or a
    closure column is among them; with each of settings.regressors.statics as a column ``static:<name>``
    (one value per series, forecasting.global_model.split_statics) when the global model may run."""
    reads = GLOBAL_MODEL in models or COMBINATION in models
    if not reads and settings.closed.column is None:
        return None
    statics = settings.regressors.statics if reads else []
    if not (settings.regressors.use or statics) or not table_exists(con, "gold.regressors"):
        return None
    columns = "".join(f', r."{c}"' for c in settings.regressors.use)
    if not statics:
        return f"select r.unique_id::varchar as unique_id, r.ds{columns} from gold.regressors r"
    files = settings.regressors.file_statics
    parts = [(f"s{i}", table, names) for i, (table, names) in enumerate(
        [(GOLD_TABLE, [c for c in statics if c not in files]), (SERIES_TABLE, files)]) if names]
    for _, table, names in parts:
        check_statics(con, table, names)
    picked = ", ".join(f'{alias}."{STATIC_PREFIX}{c}"' for alias, _, names in parts for c in names)
    joins = " ".join(
        "left join (select unique_id::varchar as unique_id, "
        + ", ".join(f'{static_value(c)} as "{STATIC_PREFIX}{c}"' for c in names)
        + f" from {table} group by 1) {alias} on r.unique_id::varchar = {alias}.unique_id"
        for alias, table, names in parts)
    return f"select r.unique_id::varchar as unique_id, r.ds{columns}, {picked} from gold.regressors r {joins}"


def static_value(column: str) -> str:
    # A series file may change a series' attribute from row to row: its latest value stands for the series.
    return f'arg_max("{column}", ds) filter (where "{column}" is not null)'


def check_statics(con: duckdb.DuckDBPyConnection, table: str, statics: list[str]) -> None:
    """Raise ValueError naming each declared static attribute that ``table`` does not hold or holds no value of."""
    present = {c[0].lower() for c in con.execute(f"select * from {table} limit 0").description} \
        if table_exists(con, table) else set()
    absent = [c for c in statics if c.lower() not in present]
    if absent:
        raise ValueError(f"regressors.statics names {absent}, not a column of {table} (columns: "
                         f"{sorted(present)}): series files need a column of that name, order lines by product "
                         "x customer for channel and region")
    counted = ", ".join(f'count("{c}")' for c in statics)
    counts = con.execute(f"select {counted} from {table}").fetchone()
    empty = [c for c, n in zip(statics, counts, strict=True) if n == 0]
    if empty:
        raise ValueError(f"regressors.statics names {empty}, which has no value in any row of {table}")


def sql_fingerprint(con: duckdb.DuckDBPyConnection, sql: str | None) -> str:
    """An order-free fingerprint of a query's rows ('' for no query)."""
    if sql is None:
        return ""
    found = con.execute(f"select count(*), coalesce(sum(hash(columns(*)))::varchar, '') from ({sql})").fetchone()
    return _digest("|".join(map(str, found)))


def backtest_fingerprint(data: str, settings: Settings, models: list[str], regressors: str = "") -> str:
    # The metric changes the backtest only through the Combination's members: a metric change alone must not
    # cost a backtest of the whole zoo otherwise.
    metric = settings.selection.metric if COMBINATION in models else ""
    spec = f"{data}|{settings.frequency}|{settings.horizon}|{settings.step}|" \
           f"{settings.backtest.windows}|{settings.season}|{','.join(models)}|{regressors}|" \
           f"{settings.combination_size}|{settings.regressors.model_dump_json()}|{metric}|" \
           f"{settings.closed.model_dump_json()}"
    return _digest(spec)


def model_fingerprint(data: str, settings: Settings, regressors: str) -> str:
    """What the registered model is made from: the history, the settings and (when used) the regressors."""
    # New planned promotions change LightGBM's forecasts: they register a new version too.
    return f"{data}-{settings.fingerprint()}" + (f"-{regressors}" if regressors else "")
