"""How good were the forecasts we issued, now that the actuals are in?

Every forecast run is kept in ``monitoring.forecast_history`` (append-only, one row per series, period and
issue). When gold later holds the actual y of a forecast period, the forecast is scored: absolute error,
SMAPE on the M4 scale (0-200, ``200 * |y - y_hat| / (|y| + |y_hat|)``, 0/0 counted as 0) and whether the
actual fell inside the 80% and 95% prediction intervals.
"""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pandas as pd

from mlops_assets.forecasting.metrics import smape_terms
from mlops_assets.warehouse import table_exists

KEY = ["unique_id", "ds"]
METRIC_COLUMNS = ["n", "smape", "mae", "bias", "coverage_80", "coverage_95"]
# Rounding before comparing forecasts, so a DuckDB round trip does not make a rerun look new.
_Y_HAT_DECIMALS = 6


def _within(y: pd.Series, lo: pd.Series, hi: pd.Series) -> pd.Series:
    inside = pd.Series((y >= lo) & (y <= hi), index=y.index, dtype="boolean")
    return inside.mask(lo.isna() | hi.isna())  # no interval: unknown, not a miss


def _with_steps(history: pd.DataFrame) -> pd.DataFrame:
    if "horizon_step" in history and history["horizon_step"].notna().all():
        return history
    # Older rows without a step: the step is the period's rank among the forecasts of the same issue.
    issue = [c for c in ["unique_id", "model", "model_version", "issued_at"] if c in history]
    step = history.groupby(issue, dropna=False)["ds"].rank(method="dense").astype("int64")
    if "horizon_step" in history:
        step = history["horizon_step"].fillna(step).astype("int64")
    return history.assign(horizon_step=step)


def score_forecasts(history: pd.DataFrame, actuals: pd.DataFrame) -> pd.DataFrame:
    """Every past forecast whose (unique_id, ds) now has an actual y (reported, not ``imputed``), with its errors.

    Returns the history columns plus y, abs_error, smape (0-200), in_80 and in_95 (nullable booleans: NA
    when the forecast has no such interval), sorted by issued_at, unique_id, ds, model.
    """
    reported = actuals["y"].notna()
    if "imputed" in actuals:  # gold interpolated these across a gap in a series file: not actuals
        reported &= ~actuals["imputed"].astype(bool)
    known = actuals.loc[reported, [*KEY, "y"]].drop_duplicates(KEY)
    known = known.assign(ds=pd.to_datetime(known["ds"]).astype("datetime64[ns]"))
    past = _with_steps(history).drop(columns=["y"], errors="ignore")
    past = past.assign(ds=pd.to_datetime(past["ds"]).astype("datetime64[ns]"))
    scored = past.merge(known, on=KEY, how="inner")
    scored["abs_error"] = (scored["y"] - scored["y_hat"]).abs()
    scored["smape"] = smape_terms(scored["y"].to_numpy(float), scored["y_hat"].to_numpy(float))
    for level in (80, 95):
        lo, hi = f"lo_{level}", f"hi_{level}"
        if lo in scored and hi in scored:
            scored[f"in_{level}"] = _within(scored["y"], scored[lo], scored[hi])
        else:
            scored[f"in_{level}"] = pd.Series(pd.NA, index=scored.index, dtype="boolean")
    order = [c for c in ["issued_at", "unique_id", "ds", "model", "model_version"] if c in scored]
    return scored.sort_values(order).reset_index(drop=True)


def _summarize(scored: pd.DataFrame, by: str) -> pd.DataFrame:
    frame = scored.assign(
        signed_error=scored["y_hat"] - scored["y"],
        in_80=scored["in_80"].astype("Float64"),
        in_95=scored["in_95"].astype("Float64"),
    )
    table = frame.groupby(by, sort=True, dropna=False).agg(
        n=("smape", "size"),
        smape=("smape", "mean"),
        mae=("abs_error", "mean"),
        bias=("signed_error", "mean"),
        coverage_80=("in_80", "mean"),
        coverage_95=("in_95", "mean"),
    )
    table = table.reset_index()
    table["n"] = table["n"].astype("int64")
    for column in ("coverage_80", "coverage_95"):
        table[column] = table[column].astype("float64")
    return table[[by, *METRIC_COLUMNS]]


def accuracy_summary(scored: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Realized accuracy by_series, by_step (steps ahead), by_version (model version) and trend (per forecast
    issue, sorted by issued_at). Columns: the key, n, smape (mean, 0-200), mae, bias (mean y_hat - y),
    coverage_80 and coverage_95 (share of actuals inside the interval, NaN when there are no intervals)."""
    return {
        "by_series": _summarize(scored, "unique_id"),
        "by_step": _summarize(scored, "horizon_step"),
        "by_version": _summarize(scored, "model_version"),
        "trend": _summarize(scored, "issued_at"),
    }


def _signature(forecasts: pd.DataFrame) -> str:
    """Order-free fingerprint of one issue: the set of its (unique_id, ds, model, model_version, train_end,
    y_hat) rows."""
    rows = pd.DataFrame(
        {
            "unique_id": forecasts["unique_id"].astype(str),
            "ds": pd.to_datetime(forecasts["ds"]).astype("datetime64[ns]"),
            "model": forecasts["model"].astype(str),
            "model_version": forecasts["model_version"].astype(str),
            "train_end": pd.to_datetime(forecasts["train_end"]).astype("datetime64[ns]"),
            "y_hat": forecasts["y_hat"].astype("float64").round(_Y_HAT_DECIMALS),
        }
    )
    rows = rows.sort_values(list(rows.columns)).reset_index(drop=True)
    return hashlib.sha256(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes()).hexdigest()


def append_history(
    existing: pd.DataFrame | None,
    new_forecasts: pd.DataFrame,
    issued_at: pd.Timestamp,
    *,
    train_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """``existing`` with ``new_forecasts`` appended as one issue at ``issued_at``.

    Adds issued_at, train_end (the argument, else a train_end column of the forecasts, else NaT) and
    horizon_step (rank of ds within unique_id and model, 1-based). Existing rows are never changed or
    dropped. When the same forecasts (same model_version, train_end and unique_id/ds/model/y_hat set) are
    already in the history, nothing is appended, so a rerun is harmless.
    """
    issued = pd.Timestamp(issued_at)
    if issued.tzinfo is not None:
        issued = issued.tz_convert("UTC").tz_localize(None)  # tables hold naive UTC timestamps
    new = new_forecasts.copy()
    if train_end is not None:
        new["train_end"] = pd.Timestamp(train_end)
    elif "train_end" not in new:
        new["train_end"] = pd.NaT
    new["train_end"] = pd.to_datetime(new["train_end"])
    new["issued_at"] = issued
    new["horizon_step"] = new.groupby(["unique_id", "model"])["ds"].rank(method="dense").astype("int64")
    if existing is None or existing.empty:
        return new.sort_values(["unique_id", "model", "ds"]).reset_index(drop=True)

    if "train_end" not in existing:
        existing_issues = existing.assign(train_end=pd.NaT)
    else:
        existing_issues = existing
    same_version = existing_issues.loc[existing_issues["model_version"].isin(new["model_version"].unique())]
    signature = _signature(new)
    issues = same_version.groupby(["issued_at", "model_version", "train_end"], sort=True, dropna=False)
    for _, issue in issues:
        if _signature(issue) == signature:
            return existing.copy()
    return pd.concat([existing, new.sort_values(["unique_id", "model", "ds"])], ignore_index=True)


def realized_vs_backtest(scored: pd.DataFrame, champions: pd.DataFrame) -> pd.DataFrame:
    """Per series: realized SMAPE of the champion model's issued forecasts against the backtest SMAPE it
    was chosen on (both 0-200). ratio = realized / backtest; a perfect backtest (0) gives ratio 1 when the
    realized SMAPE is 0 too, else inf. Series without scored forecasts of their champion model are left out.

    Columns: unique_id, model, n, realized_smape, backtest_smape, ratio; sorted by unique_id.
    """
    promised = champions[["unique_id", "model", "smape"]].rename(columns={"smape": "backtest_smape"})
    realized = (
        scored.groupby(["unique_id", "model"], sort=True)
        .agg(n=("smape", "size"), realized_smape=("smape", "mean"))
        .reset_index()
    )
    table = realized.merge(promised, on=["unique_id", "model"], how="inner")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = table["realized_smape"] / table["backtest_smape"]
    both_zero = (table["backtest_smape"] == 0) & (table["realized_smape"] == 0)
    table["ratio"] = ratio.mask(both_zero, 1.0)
    table["n"] = table["n"].astype("int64")
    columns = ["unique_id", "model", "n", "realized_smape", "backtest_smape", "ratio"]
    return table[columns].sort_values("unique_id").reset_index(drop=True)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [column[0] for column in con.execute(f"select * from {table} limit 0").description]


def issue_sql(con: duckdb.DuckDBPyConnection, forecasts: str) -> str:
    """append_history's new rows as DuckDB SQL over the stored ``forecasts`` (one parameter: issued_at, naive
    UTC): the forecasts with train_end (NULL unless they carry one), issued_at and horizon_step."""
    columns = _columns(con, forecasts)
    train_end = "" if "train_end" in columns else ", cast(null as timestamp_ns) as train_end"
    # Forecasts that carry their step (a series behind the others starts further back) keep it.
    step = "" if "horizon_step" in columns else \
        ", dense_rank() over (partition by unique_id, model order by ds)::bigint as horizon_step"
    return (
        f"select *{train_end}, cast(? as timestamp) as issued_at{step} "
        f"from {forecasts} order by unique_id, model, ds"
    )


def issue_already_stored(con: duckdb.DuckDBPyConnection, history: str, forecasts: str,
                         version: str = "model_version") -> bool:
    """Whether ``history`` already holds an issue with the same rows as ``forecasts`` (append_history's test:
    same ``version`` (model_version; a levels issue: its reconciliation method), train_end and
    unique_id/ds/model/y_hat set, y_hat to 6 decimals), asked of DuckDB."""
    if not table_exists(con, history):
        return False

    def rows(table: str) -> str:
        train_end = "train_end" if "train_end" in _columns(con, table) else "null"
        return (f"unique_id::varchar, ds::timestamp_ns, model::varchar, {version}::varchar, "
                f"{train_end}::timestamp_ns, round(y_hat::double, {_Y_HAT_DECIMALS})"), train_end

    new, _ = rows(forecasts)
    old, train_end = rows(history)
    issues = con.execute(
        f"select distinct issued_at, {version}, {train_end} from {history} "
        f"where {version}::varchar in (select {version}::varchar from {forecasts}) order by all"
    ).fetchall()
    for issued_at, issue_version, end in issues:
        issue = (f"select {old} from {history} where issued_at = $1 and {version} = $2 "
                 f"and {train_end} is not distinct from $3")
        differing = con.execute(
            f"select count(*) from ((select {new} from {forecasts} except all {issue}) "
            f"union all ({issue} except all select {new} from {forecasts}))",
            [issued_at, issue_version, end],
        ).fetchone()[0]
        if differing == 0:
            return True
    return False


def summary_sql(table: str, by: str, limit: int | None = None, wape: bool = False) -> str:
    """accuracy_summary's table by ``by`` as DuckDB SQL over the stored scored forecasts (first ``limit`` rows);
    with ``wape``, also 100 * sum|error| / sum|actual| (percent; NULL when every actual is 0)."""
    wape_sql = "100 * sum(abs_error) / nullif(sum(abs(y)), 0) as wape, " if wape else ""
    return (
        f"select {by}, count(*)::bigint as n, avg(smape) as smape, {wape_sql}avg(abs_error) as mae, "
        "avg(y_hat - y) as bias, avg(in_80::double) as coverage_80, avg(in_95::double) as coverage_95 "
        f"from {table} group by {by} order by {by} nulls last" + (f" limit {int(limit)}" if limit else "")
    )


SUMMARY_KEYS = {"by_series": "unique_id", "by_step": "horizon_step", "by_version": "model_version",
                "trend": "issued_at"}
