"""How good were the forecasts of every level, now that the actuals are in?

The issued coherent forecast (forecasting.forecasts_by_level's default method) is kept in
monitoring.forecast_history_by_level, one issue per new forecast (a rerun adds nothing: accuracy.py's test,
with the reconciliation method in the place of the model version), and scored by accuracy.py's scorer against
the nodes' actuals once gold holds them: a group's summed from gold (levels/actuals.py, one bucket at a time), a
series' its own, one range of series at a time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.buckets import range_rows, series_ranges
from mlops_assets.levels.actuals import group_actuals, stored_hierarchy
from mlops_assets.monitoring.accuracy import score_forecasts, summary_sql
from mlops_assets.monitoring.accuracy_by_range import ScoredParts
from mlops_assets.settings import Settings
from mlops_assets.warehouse import require_table, table_exists, write_part

# What tells two issues of the levels apart besides their rows (accuracy.issue_already_stored's version).
ISSUE_VERSION = "method"


def issue_source(con: duckdb.DuckDBPyConnection, forecasts: str, frequency: str) -> str | None:
    """The default rows of ``forecasts`` (forecasting.forecasts_by_level) as one issue, an SQL subquery: level,
    unique_id, ds, method, model (the node's own champion), y_hat, the bounds, train_end (the period before the
    first forecast one) and horizon_step. None when there is no default row."""
    first = con.execute(f"select min(ds) from {forecasts} where is_default").fetchone()[0]
    if first is None:
        return None
    train_end = pd.date_range(end=pd.Timestamp(first), periods=2, freq=frequency)[0]
    names = [c[0] for c in con.execute(f"select * from {forecasts} limit 0").description]
    bounds = "".join(f", {c}" for c in names if c.startswith(("lo_", "hi_")))
    return (f"(select level, unique_id::varchar as unique_id, ds, method, base_model as model, y_hat{bounds}, "
            f"timestamp '{train_end}' as train_end, "
            "dense_rank() over (partition by unique_id order by ds)::bigint as horizon_step "
            f"from {forecasts} where is_default)")


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def score_levels(con: duckdb.DuckDBPyConnection, *, history: str, gold: str, settings: Settings, parts: Path,
                 range_series: int) -> ScoredParts:
    """Every issued forecast of ``history`` whose node and period now have an actual, scored (accuracy.py's
    score_forecasts), written as Parquet parts: the groups one bucket at a time, the series one range at a time."""
    shutil.rmtree(parts, ignore_errors=True)
    for table in (history, gold):
        require_table(con, table)
    hierarchy = stored_hierarchy(con, gold, settings)
    bottom = _sql_text(hierarchy.levels[-1])
    groups = con.execute(f"select * from {history} where level <> {bottom}").df()
    written, columns, empty, k = 0, None, None, 0

    def keep(scored: pd.DataFrame, name: str) -> None:
        nonlocal written, columns, empty
        if scored.empty:
            empty = scored
            return
        columns = scored.head(0) if columns is None else columns
        write_part(scored, parts / f"{name}.parquet")
        written += len(scored)

    for k, actuals in enumerate(group_actuals(con, gold, hierarchy, settings.frequency)):
        issued = groups[groups["unique_id"].isin(set(actuals["unique_id"]))]
        keep(score_forecasts(issued, actuals.drop(columns="level")), f"groups-{k:05d}")
    imputed = ", imputed" if "imputed" in [c[0] for c in con.execute(f"select * from {gold} limit 0").description] \
        else ""
    ranges = series_ranges(con, f"(select unique_id from {history} where level = {bottom})", range_series)
    for j, bounds in enumerate(ranges):
        issued = range_rows(con, history, bounds, where=f"level = {bottom}")
        keep(score_forecasts(issued, range_rows(con, gold, bounds, f"unique_id, ds, y{imputed}")), f"series-{j:05d}")
    return ScoredParts(parts, written, k + 1 + len(ranges), pd.DataFrame(),
                       columns if columns is not None else empty)


def level_summary(con: duckdb.DuckDBPyConnection, accuracy: str, evaluation: str) -> pd.DataFrame:
    """Per level, top first (fewest nodes): nodes, n, realized smape (mean, 0-200), wape (%), mae, bias, coverage,
    and, when ``evaluation`` (forecasting.evaluation_by_level) is stored, the default method's backtest smape and
    wape beside them."""
    table = con.execute(f"select level, count(distinct unique_id)::bigint as nodes from {accuracy} group by 1").df()
    table = table.merge(con.execute(summary_sql(accuracy, "level", wape=True)).df(), on="level")
    if table_exists(con, evaluation):
        promised = con.execute(f"select level, smape as backtest_smape, wape as backtest_wape from {evaluation} "
                               "where is_default").df()
        table = table.merge(promised, on="level", how="left")
    return table.sort_values(["nodes", "level"]).reset_index(drop=True)
