"""Regressors: what the business knows about each series' periods, the past ones and the next horizon.

- ``promo_depth``: the mean, over the period's days, of the deepest discount (percent) of any promotion on
  the series' product that day; on a product x customer grain, only promotions for all customers or for
  that customer. Known in advance: promotions are planned, and ``raw.promotions`` keeps the planned ones
  that start after the end of the data.
- ``holiday_days``: days of the period that are public holidays of ``settings.regressors.country`` (the
  ``holidays`` package); known in advance.

- the columns of a series file declared in ``settings.regressors.series_columns`` (source: series): their
  values in the series' rows, the future ones from the rows after its last value (an empty y). An empty
  cell, or a period without a row, is 0 in a ``planned`` column (nothing planned) and the series' previous
  value in a ``last_known`` one (0 before its first).

The first two and ``planned`` columns are known for future periods, so a model may use their values at any
date, also in the backtest. Regressors whose future is not known (``last_known``: a price) are kept here as
they happened; whoever uses them applies ``forecasting.global_model.known_at``: after a cutoff, the last
value up to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import holidays
import numpy as np
import pandas as pd

from mlops_assets.forecasting.common_end import future_dates, steps_through
from mlops_assets.gold.aggregation import period_start

REGRESSOR_COLUMNS = ("promo_depth", "holiday_days")


def future_periods(history: pd.DataFrame, frequency: str, horizon: int,
                   data_end: pd.Timestamp | None = None) -> pd.DataFrame:
    """unique_id, ds of the periods after each series' last period through the common horizon end (the
    latest series' last period plus ``horizon``: forecasting.common_end). ``data_end``: the latest last period
    of every series, when ``history`` holds only some of them (a bucket)."""
    last = history.groupby("unique_id", sort=True)["ds"].max()
    return future_dates(last, steps_through(last, horizon, frequency, data_end), frequency)


def _period_days(ds: pd.Series, frequency: str) -> tuple[np.ndarray, np.ndarray]:
    """First day and number of days of each period starting at ds."""
    offset = pd.tseries.frequencies.to_offset(frequency)
    start = pd.to_datetime(ds).reset_index(drop=True)
    end = pd.DatetimeIndex(start + offset)
    return start.to_numpy(), ((end - pd.DatetimeIndex(start)).days.to_numpy()).astype(int)


def holiday_days(ds: pd.Series, frequency: str, country: str | None) -> np.ndarray:
    """Public holidays of ``country`` in each period starting at ds (zeros when country is None)."""
    if country is None or len(ds) == 0:
        return np.zeros(len(ds))
    start, n_days = _period_days(ds, frequency)
    first, last = pd.Timestamp(start.min()), pd.Timestamp(start.max()) + pd.Timedelta(days=int(n_days.max()))
    calendar = holidays.country_holidays(country, years=range(first.year, last.year + 1))
    days = np.array(sorted(np.datetime64(d, "ns") for d in calendar), dtype="datetime64[ns]")
    ends = start + n_days.astype("timedelta64[D]")
    return (np.searchsorted(days, ends, side="left") - np.searchsorted(days, start, side="left")).astype(float)


def promotion_depth(
    periods: pd.DataFrame, promotions: pd.DataFrame | None, frequency: str, grain: Sequence[str]
) -> np.ndarray:
    """promo_depth of each row of ``periods`` (unique_id, ds, product_id[, customer_id]); see the module doc."""
    out = np.zeros(len(periods))
    if promotions is None or promotions.empty or periods.empty:
        return out
    promos = promotions.assign(
        start_date=pd.to_datetime(promotions["start_date"]), end_date=pd.to_datetime(promotions["end_date"])
    )
    length = (promos["end_date"] - promos["start_date"]).dt.days.to_numpy() + 1
    days = pd.DataFrame({
        "product_id": np.repeat(promos["product_id"].astype(str).to_numpy(), length),
        "customer_id": np.repeat(promos["customer_id"].fillna("").astype(str).to_numpy(), length),
        "day": np.repeat(promos["start_date"].to_numpy(), length)
        + np.concatenate([np.arange(n) for n in length]).astype("timedelta64[D]"),
        "depth": np.repeat(promos["discount_pct"].to_numpy(dtype=float), length),
    })
    keys = ["product_id"]
    rows = periods.reset_index(drop=True).assign(product_id=lambda d: d["product_id"].astype(str))
    if "customer_id" in grain:
        keys.append("customer_id")
        # A promotion for all customers counts for every customer's series.
        everyone = days[days["customer_id"] == ""]
        customers = rows["customer_id"].astype(str).unique()
        days = pd.concat([days[days["customer_id"] != ""],
                          everyone.loc[everyone.index.repeat(len(customers))].assign(
                              customer_id=np.tile(customers, len(everyone)))])
        rows = rows.assign(customer_id=rows["customer_id"].astype(str))
    daily = days.groupby([*keys, "day"], sort=False)["depth"].max().reset_index()
    daily["ds"] = period_start(daily["day"], frequency)
    per_period = daily.groupby([*keys, "ds"], sort=False)["depth"].sum().rename("depth_sum").reset_index()
    merged = rows[[*keys, "ds"]].assign(ds=pd.to_datetime(rows["ds"])).merge(per_period, on=[*keys, "ds"], how="left")
    _, n_days = _period_days(rows["ds"], frequency)
    return merged["depth_sum"].fillna(0.0).to_numpy() / n_days


def series_column_values(rows: pd.DataFrame, series: pd.DataFrame | None, columns: Mapping[str, str],
                         frequency: str) -> pd.DataFrame:
    """The declared ``columns`` (name -> planned or last_known) for each of ``rows`` (unique_id, ds sorted by
    series and period), from the series file's rows of the same series and period (see the module doc)."""
    out = pd.DataFrame(index=rows.index)
    if not columns:
        return out
    keys = rows[["unique_id", "ds"]].astype({"unique_id": str})
    if series is not None and len(series):
        given = series.reindex(columns=["unique_id", "ds", *columns]).assign(
            unique_id=lambda d: d["unique_id"].astype(str), ds=lambda d: period_start(d["ds"], frequency))
        # A period holds one row per series once gold has checked the frequency; a misfit keeps its last.
        given = given.sort_values(["unique_id", "ds"], kind="stable").drop_duplicates(["unique_id", "ds"], keep="last")
        keys = keys.merge(given, on=["unique_id", "ds"], how="left", validate="one_to_one")
    for name, kind in columns.items():
        values = pd.to_numeric(keys[name], errors="coerce") if name in keys else pd.Series(np.nan, index=keys.index)
        if kind == "last_known":
            values = values.groupby(keys["unique_id"].to_numpy(), sort=False).ffill()
        out[name] = values.fillna(0.0).astype(float).to_numpy()
    return out


def build_regressors(
    gold: pd.DataFrame,
    promotions: pd.DataFrame | None,
    frequency: str,
    horizon: int,
    grain: Sequence[str] = ("product_id",),
    country: str | None = None,
    series: pd.DataFrame | None = None,
    series_columns: Mapping[str, str] | None = None,
    data_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """unique_id, ds, is_future, promo_depth, holiday_days and the declared ``series_columns`` (from
    ``series``, raw.series) for every gold period and the next horizon (through the common end: ``data_end``
    is the last period of all of gold when ``gold`` is a bucket of it)."""
    attributes = [c for c in ("product_id", "customer_id") if c in gold.columns]
    past = gold[["unique_id", "ds", *attributes]].assign(ds=lambda d: pd.to_datetime(d["ds"]), is_future=False)
    future = future_periods(past, frequency, horizon, data_end).merge(
        past.drop_duplicates("unique_id")[["unique_id", *attributes]], on="unique_id", how="left"
    ).assign(is_future=True)
    rows = pd.concat([past, future], ignore_index=True).sort_values(["unique_id", "ds"], kind="stable")
    rows = rows.reset_index(drop=True)
    rows["promo_depth"] = (
        promotion_depth(rows, promotions, frequency, grain) if "product_id" in rows else np.zeros(len(rows))
    )
    rows["holiday_days"] = holiday_days(rows["ds"], frequency, country)
    declared = dict(series_columns or {})
    if declared:
        rows[list(declared)] = series_column_values(rows, series, declared, frequency)
    return rows[["unique_id", "ds", "is_future", *REGRESSOR_COLUMNS, *declared]]


def promotions_planned(con) -> bool:
    """Whether gold.regressors holds any promotion (promo_depth > 0): planned promotions are drivers to use."""
    found = con.execute("select count(*) from information_schema.columns where table_schema = 'gold' "
                        "and table_name = 'regressors' and column_name = 'promo_depth'").fetchone()[0]
    return bool(found) and con.execute("select exists (select 1 from gold.regressors where promo_depth > 0)"
                                       ).fetchone()[0]
