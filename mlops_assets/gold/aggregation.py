"""The gold layer: one row per series and period, ready to forecast, plus the series not to forecast.

Two sources feed it. ``orders`` aggregates order lines (returns netted) into periods of
``settings.frequency`` and joins product and customer attributes; a period without an order line is zero
sales, from a series' first order line to the end of the data. ``series`` takes pre-aggregated series,
one value per series and period; a period without a value (no row, or an empty y) means what
``settings.missing_periods`` says:

- ``not_reported`` (the default for series): gaps between two values are interpolated linearly and flagged
  ``imputed``; a series starts at its first value and ends at its last.
- ``zero``: the period sold nothing; filled with 0 from a series' first value to the end of the data
  (the latest period a quarter of the series reach).

A series file whose dates do not fit the frequency (two rows in one period, dates at different places in
their periods, values evenly spaced several periods apart) is never summed or filled: the series is listed
in ``gold.series_excluded`` as ``wrong_frequency`` with the file and row, and left out of gold.

Each series is forecast from its own last period: one lagging by up to ``settings.stale_after`` periods
behind the latest period a quarter of the series reach is still forecast, one further behind is ``stale``.
Excluded series keep their actuals in the gold table (they feed monitoring and plots);
``gold.series_excluded`` says which are not forecast and why.

Series are handled as integer codes (sorted by ``unique_id``) and periods as positions on one period grid,
so the work is a few NumPy passes over all rows, never a loop over series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.offsets import BaseOffset, Day, MonthEnd, QuarterEnd, Tick, Week, YearEnd

from mlops_assets.settings import Settings

VALUE_COLUMNS = ["y", "revenue", "avg_unit_price", "promo_share", "imputed"]
PRODUCT_ATTRIBUTES = ["product_name", "brand", "category"]
CUSTOMER_ATTRIBUTES = ["customer_name", "channel", "region"]
EXCLUDED_COLUMNS = ["unique_id", "reason_code", "reason", "n_periods", "first_ds", "last_ds"]
# First matching reason wins, in this order.
REASON_CODES = ["wrong_frequency", "missing_values", "all_zero", "discontinued", "stale", "too_short"]


def GOLD_COLUMNS(grain: Sequence[str]) -> list[str]:
    """Columns of gold.sales_data_for_forecast for a grain ([product_id] or [product_id, customer_id])."""
    columns = ["unique_id", "ds", *VALUE_COLUMNS, "product_id", *PRODUCT_ATTRIBUTES]
    if "customer_id" in grain:
        columns += ["customer_id", *CUSTOMER_ATTRIBUTES]
    return columns


def _offset(frequency: str) -> BaseOffset:
    offset = pd.tseries.frequencies.to_offset(frequency)
    if offset.n != 1 or (isinstance(offset, Tick) and not isinstance(offset, Day)):
        raise ValueError(f"frequency {frequency!r}: use a single daily or longer period (D, W-MON, MS, ...)")
    if isinstance(offset, (MonthEnd, QuarterEnd, YearEnd)):
        raise ValueError(f"frequency {frequency!r} labels periods by their end; ds is the period start: "
                         "use the start alias (MS, QS, YS)")
    return offset


def period_start(dates: pd.Series, frequency: str) -> pd.Series:
    """Start of the period each date falls in; ``W-<DAY>`` weeks start on <DAY> (W-MON: Monday)."""
    offset = _offset(frequency)
    days = pd.to_datetime(dates).dt.normalize()
    if isinstance(offset, Week) and offset.weekday is not None:
        number = days.to_numpy().astype("datetime64[D]").astype("int64")
        back = (number + 3 - offset.weekday) % 7  # 1970-01-01 was a Thursday (weekday 3)
        starts = (number - back).astype("datetime64[D]").astype("datetime64[ns]")
        return pd.Series(starts, index=dates.index, name=dates.name).where(days.notna())
    if isinstance(offset, Day):
        return days
    # Other anchored offsets (MS, QS, YS, B): roll each distinct day back onto the offset, so the Python
    # call runs once per calendar day, not once per row.
    codes, uniques = pd.factorize(days)
    starts = pd.DatetimeIndex([offset.rollback(day) for day in uniques]).append(pd.DatetimeIndex([pd.NaT]))
    return pd.Series(starts.values[codes], index=dates.index, name=dates.name)


def _sorted_codes(codes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes renumbered so that code order is the string order of ``labels``; also the permutation."""
    order = np.argsort(labels, kind="stable")
    rank = np.empty(len(order), dtype="int64")
    rank[order] = np.arange(len(order))
    return rank[codes], labels[order], order


def _grid(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Series code and period position of every cell from each series' first to last position."""
    length = np.maximum(last - first + 1, 0)
    starts = np.cumsum(length) - length
    pos = np.arange(length.sum()) - np.repeat(starts, length) + np.repeat(first, length)
    return np.repeat(np.arange(len(first)), length), pos, length


def _gold_frame(columns: dict[str, np.ndarray], grain: Sequence[str]) -> pd.DataFrame:
    """The gold table from per-row arrays, built in one go (inserting columns one by one copies them)."""
    n = len(columns["y"]) if "y" in columns else 0
    empty = {"ds": np.array([], dtype="datetime64[ns]"), **{c: np.full(n, np.nan) for c in VALUE_COLUMNS},
             "imputed": np.zeros(n, dtype=bool)}
    arrays = {name: columns[name] if name in columns else empty.get(name, np.full(n, None, dtype=object))
              for name in GOLD_COLUMNS(grain)}
    return pd.DataFrame(arrays, copy=False)


def _finish_excluded(excluded: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [frame[EXCLUDED_COLUMNS] for frame in excluded if len(frame)]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=EXCLUDED_COLUMNS)
    frame = frame.astype({"unique_id": object, "reason_code": object, "reason": object, "n_periods": "int64",
                          "first_ds": "datetime64[ns]", "last_ds": "datetime64[ns]"})
    return frame.sort_values("unique_id", kind="stable").reset_index(drop=True)


def _day(periods: pd.DatetimeIndex, pos: np.ndarray) -> pd.Series:
    return pd.Series(periods[np.clip(pos, 0, len(periods) - 1)].strftime("%Y-%m-%d"))


def _too_short_reason(n_periods: pd.Series, settings: Settings) -> pd.Series:
    min_train = settings.backtest.min_train_periods or settings.horizon
    count = settings.backtest.windows
    windows = f"{count} window{'s' if count > 1 else ''} of {settings.horizon}"
    if settings.step != settings.horizon:
        windows += f", {settings.step} periods apart"
    need = f"; the backtest needs {settings.min_series_length} ({min_train} training + {windows})"
    return n_periods.astype(str) + " periods of history" + need


def _quarter_reach(last: np.ndarray):
    """The latest of ``last`` that a quarter of the series reach."""
    return np.sort(last)[-int(np.ceil(len(last) / 4))]


def _classify(uids: np.ndarray, length: np.ndarray, pos: np.ndarray, y: np.ndarray,
              periods: pd.DatetimeIndex, settings: Settings, stop: pd.Series | None,
              end_pos: int | None = None) -> pd.DataFrame:
    """Excluded rows (all reasons but missing_values) for series laid out contiguously on the grid.

    ``uids``/``length`` list the series with at least one cell, in grid order; ``stop`` is the
    product's discontinued date per series (orders source); ``end_pos``, the end of the data over all
    series (default: over these)."""
    keep = length > 0
    if not keep.any():
        return pd.DataFrame(columns=EXCLUDED_COLUMNS)
    uids, length = uids[keep], length[keep]
    starts = np.cumsum(length) - length
    first_pos, last_pos = pos[starts], pos[starts + length - 1]
    any_nonzero = np.logical_or.reduceat(y != 0, starts)
    last_positive = np.maximum.reduceat(np.where(y > 0, pos, -1), starts)
    # The end of the data is the latest period a quarter of the series reach, not the very last one: a
    # series reporting early, or far ahead, must not make all the others stale or dormant.
    end_pos = _quarter_reach(last_pos) if end_pos is None else end_pos
    end = periods[end_pos].strftime("%Y-%m-%d")
    # Intermittent series go quiet for weeks; only a full season (or horizon) without a sale means dead.
    dormant = max(settings.horizon, settings.season)
    window_pos = end_pos - dormant + 1
    stats = pd.DataFrame({"unique_id": uids, "n_periods": length, "first_ds": periods[first_pos],
                          "last_ds": periods[last_pos]})

    # A series that stops before the last window is stale, not discontinued: its later periods are unknown.
    no_sales = (last_pos >= window_pos) & (last_positive < window_pos)
    sales_reason = np.where(
        last_positive < 0, f"no positive sales in its whole history up to {end}",
        "no positive sales since " + _day(periods, last_positive + 1) + " ("
        + pd.Series(end_pos - last_positive).astype(str)
        + f" periods up to {end}; a series is discontinued after {dormant} periods without a sale)")
    if stop is not None:
        stop = pd.to_datetime(stop.reindex(uids)).reset_index(drop=True)
        end_day = periods[-1] + periods.freq - pd.Timedelta(days=1)
        by_date = (stop <= end_day).to_numpy()
        sales_reason = np.where(by_date, "product discontinued on " + stop.dt.strftime("%Y-%m-%d").fillna("")
                                + f", on or before the end of the data {end_day:%Y-%m-%d}", sales_reason)
        no_sales |= by_date
    behind = end_pos - last_pos
    conditions = [~any_nonzero, no_sales, behind > settings.stale_after, length < settings.min_series_length]
    reasons = [
        "y is 0 in all " + stats["n_periods"].astype(str) + " periods",
        sales_reason,
        "last reported period " + _day(periods, last_pos) + ", " + pd.Series(behind).astype(str)
        + f" periods before {end}, the latest period a quarter of the series reach; a "
        f"series more than {settings.stale_after} periods behind is not forecast (gold.stale_after)",
        _too_short_reason(stats["n_periods"], settings),
    ]
    stats["reason_code"] = np.select(conditions, REASON_CODES[2:], default="")
    stats["reason"] = np.select(conditions, reasons, default="")
    return stats.loc[stats["reason_code"] != ""]


def _promoted(product: np.ndarray, customer: np.ndarray, day: np.ndarray, products: pd.Index,
              customers: pd.Index, promotions: pd.DataFrame | None) -> np.ndarray:
    """Whether each line (codes into ``products``/``customers``, day number) is under an active promotion.

    Promotions become intervals keyed by (product, customer or 0 for all customers); sorted by key and
    start, the running maximum of the end tells whether any interval starting on or before a day still
    runs on it, so one ``searchsorted`` answers every line."""
    if promotions is None or promotions.empty or len(day) == 0:
        return np.zeros(len(day), dtype=bool)
    promo_product = products.get_indexer(promotions["product_id"].astype(str))
    everyone = promotions["customer_id"].isna().to_numpy()
    promo_customer = np.where(everyone, -1, customers.get_indexer(promotions["customer_id"].astype(str)))
    low, high = day.min(), day.max()
    start = np.maximum(_day_numbers(promotions["start_date"]), low)
    finish = np.minimum(_day_numbers(promotions["end_date"]), high)
    usable = (promo_product >= 0) & (everyone | (promo_customer >= 0)) & (start <= finish)
    if not usable.any():
        return np.zeros(len(day), dtype=bool)
    span, slots = high - low + 1, len(customers) + 1
    key = promo_product[usable] * slots + promo_customer[usable] + 1
    intervals = pd.DataFrame({"at": key * span + start[usable] - low, "key": key, "finish": finish[usable]})
    intervals = intervals.sort_values("at", kind="stable")
    intervals["finish"] = intervals.groupby("key")["finish"].cummax()
    at, keys, finish = (intervals[column].to_numpy() for column in ("at", "key", "finish"))

    def covered(line_key: np.ndarray) -> np.ndarray:
        index = np.searchsorted(at, line_key * span + day - low, side="right") - 1
        safe = np.maximum(index, 0)
        return (index >= 0) & (keys[safe] == line_key) & (finish[safe] >= day)

    return covered(product * slots + customer + 1) | covered(product * slots)


def _day_numbers(dates: pd.Series) -> np.ndarray:
    return pd.to_datetime(dates).to_numpy().astype("datetime64[D]").astype("int64")


def _attributes(table: pd.DataFrame | None, key: str, columns: list[str], ids: np.ndarray) -> pd.DataFrame:
    """``columns`` of ``table`` for each id in ``ids`` (missing table, row or column: null)."""
    if table is None or key not in table:
        return pd.DataFrame(index=range(len(ids)), columns=columns, dtype=object)
    table = table.assign(**{key: table[key].astype(str)}).drop_duplicates(key).set_index(key)
    return table.reindex(columns=columns).reindex(ids).reset_index(drop=True)


@dataclass(frozen=True)
class OrderFacts:
    """What every bucket of order lines must share: the first and last order day of all the data."""

    first_day: pd.Timestamp
    last_day: pd.Timestamp


@dataclass(frozen=True)
class SeriesFacts:
    """What every bucket of series files must share, over all series with a value: the period grid (first
    to last period with a value), where 'zero' fills run to (``reach``) and the end of the data (``end``),
    both the latest period a quarter of the series reach."""

    first: pd.Timestamp
    last: pd.Timestamp
    reach: pd.Timestamp
    end: pd.Timestamp


def _first(dates: pd.Timestamp, frequency: str) -> pd.Timestamp:
    return period_start(pd.Series([dates]), frequency).iloc[0]


def build_gold_from_orders(orders: pd.DataFrame, products: pd.DataFrame, customers: pd.DataFrame,
                           promotions: pd.DataFrame, settings: Settings,
                           facts: OrderFacts | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gold table and excluded series from order lines, at the grain and frequency of ``settings``.

    ``facts`` are those of all order lines when ``orders`` is one bucket of them (default: these lines')."""
    grain = settings.grain
    if orders is None or orders.empty:
        return _gold_frame({}, grain), _finish_excluded([])
    offset = _offset(settings.frequency)
    ds = period_start(orders["order_date"], settings.frequency)
    day = _day_numbers(orders["order_date"])
    facts = facts or OrderFacts(pd.Timestamp(day.min(), unit="D"), pd.Timestamp(day.max(), unit="D"))
    # The last period counts only when the data reach its last day; a partial period would look like a
    # collapse in demand.
    last_day = facts.last_day
    incomplete = end = _first(last_day, settings.frequency)
    if _first(last_day + pd.Timedelta(days=1), settings.frequency) == end:
        end = end - offset

    product, product_ids = pd.factorize(orders["product_id"])
    customer, customer_ids = pd.factorize(orders["customer_id"])
    product_ids, customer_ids = pd.Index(product_ids.astype(str)), pd.Index(customer_ids.astype(str))
    by_customer = "customer_id" in grain
    code, pairs = pd.factorize(product * len(customer_ids) + customer if by_customer else product)
    series_product = product_ids[pairs // len(customer_ids) if by_customer else pairs].to_numpy()
    series_customer = customer_ids[pairs % len(customer_ids)].to_numpy() if by_customer else None
    labels = (pd.Series(series_product) + "/" + series_customer).to_numpy() if by_customer else series_product
    code, uids, order = _sorted_codes(code, labels.astype(object))
    series_product = series_product[order]

    quantity = orders["quantity"].to_numpy(dtype="float64")
    gross = np.clip(quantity, 0, None)
    promoted = _promoted(product, customer, day, product_ids, customer_ids, promotions)
    inside = (ds <= end).to_numpy()
    periods = pd.date_range(min(_first(facts.first_day, settings.frequency), end), end, freq=offset)
    pos = periods.searchsorted(ds[inside].to_numpy())
    cells = pd.DataFrame({
        "key": code[inside] * len(periods) + pos, "y": quantity[inside],
        "revenue": quantity[inside] * orders["unit_price"].to_numpy(dtype="float64")[inside],
        "gross": gross[inside], "promo": np.where(promoted, gross, 0.0)[inside],
    }).groupby("key", sort=True).sum()
    cell_code, cell_pos = np.divmod(cells.index.to_numpy(), len(periods))

    first = np.full(len(uids), len(periods), dtype="int64")
    np.minimum.at(first, cell_code, cell_pos)
    grid_code, grid_pos, length = _grid(first, np.full(len(uids), len(periods) - 1))
    at = np.searchsorted(grid_code * len(periods) + grid_pos, cells.index.to_numpy())
    values = {}
    for column in ("y", "revenue", "gross", "promo"):
        values[column] = np.zeros(len(grid_code))
        values[column][at] = cells[column].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        price = np.where(values["y"] > 0, values["revenue"] / values["y"], np.nan)
        share = np.where(values["gross"] > 0, values["promo"] / values["gross"], 0.0)
    gold = {"unique_id": uids[grid_code], "ds": periods[grid_pos].to_numpy(), "y": values["y"],
            "revenue": values["revenue"], "avg_unit_price": price, "promo_share": share,
            "product_id": series_product[grid_code]}
    attributes = _attributes(products, "product_id", PRODUCT_ATTRIBUTES, series_product)
    if by_customer:
        series_customer = series_customer[order]
        attributes["customer_id"] = series_customer
        customer_attributes = _attributes(customers, "customer_id", CUSTOMER_ATTRIBUTES, series_customer)
        attributes = attributes.join(customer_attributes)
    for column in attributes:
        gold[column] = attributes[column].to_numpy(dtype=object)[grid_code]

    stop = _attributes(products, "product_id", ["discontinued_date"], series_product)["discontinued_date"]
    stop.index = uids
    excluded = [_classify(uids, length, grid_pos, values["y"], periods, settings, stop)]
    late = length == 0
    if late.any():
        excluded.append(pd.DataFrame({
            "unique_id": uids[late], "reason_code": "too_short", "n_periods": 0,
            "first_ds": incomplete, "last_ds": incomplete,
            "reason": f"no complete period of history: its only order lines fall in the incomplete period "
                      f"starting {incomplete:%Y-%m-%d} (the data end on {last_day:%Y-%m-%d})"}))
    return _gold_frame(gold, grain), _finish_excluded(excluded)


def _at(series: pd.DataFrame, row: int) -> str:
    """' (file row n)' of a raw row, where the raw table carries its lineage."""
    if "source_file" not in series or "source_row" not in series:
        return ""
    return f" ({series['source_file'].iloc[row]} row {series['source_row'].iloc[row]})"


def _dated(dates: pd.Series, row: int) -> str:
    return f"{dates.iloc[row]:%Y-%m-%d} ({dates.iloc[row]:%a})"


def _misfits(series: pd.DataFrame, code: np.ndarray, dates: pd.Series, ds: pd.Series, uids: np.ndarray,
             settings: Settings) -> pd.DataFrame:
    """Excluded rows (wrong_frequency) for series whose dates do not fit ``settings.frequency``.

    Three signs, checked in this order: two rows in one period (finer or mixed data, which would be
    summed); dates at different places in their periods (monthly dates in a weekly file fall on every
    weekday); values evenly spaced two or more periods apart (coarser data, whose periods between
    would be filled)."""
    frequency = settings.frequency
    offset = _offset(frequency)
    grid = pd.date_range(ds.min(), ds.max() + offset, freq=offset)
    pos = grid.searchsorted(ds.to_numpy())
    day, grid_day = _day_numbers(dates), _day_numbers(pd.Series(grid))
    order = np.lexsort((pos, code))  # stable: rows of one period keep their file order
    c, p = code[order], pos[order]
    from_start, to_end = (day - grid_day[pos])[order], (grid_day[pos + 1] - day)[order]
    index = np.arange(len(c))
    new = np.r_[True, c[1:] != c[:-1]]
    starts = np.flatnonzero(new)
    first = np.repeat(starts, np.diff(np.r_[starts, len(c)]))
    last = np.r_[starts[1:], len(c)] - 1

    shared = np.r_[~new[1:] & (p[1:] == p[:-1]), False]  # the next row falls in the same period
    doubled_at = np.minimum.reduceat(np.where(shared, index, len(c)), starts)
    doubled = doubled_at < len(c)
    cell = np.cumsum(np.r_[True, ~shared[:-1]]) - 1
    in_cell = np.bincount(cell)
    elsewhere = from_start != from_start[first]
    moved_at = np.minimum.reduceat(np.where(elsewhere, index, len(c)), starts)
    moved = (moved_at < len(c)) & np.logical_or.reduceat(to_end != to_end[first], starts) & ~doubled
    step, stepped = np.r_[np.diff(p), 0], np.r_[~new[1:], False]
    low = np.minimum.reduceat(np.where(stepped, step, len(grid)), starts)
    high = np.maximum.reduceat(np.where(stepped, step, -1), starts)
    coarse = ((np.add.reduceat(stepped, starts) >= 3) & (low >= 2) & (high - low <= 0.15 * low)
              & ~doubled & ~moved)

    fills = "filled with zeros" if settings.missing_periods == "zero" else "interpolated"
    reasons = {}
    for k in np.flatnonzero(doubled):
        at = doubled_at[k]
        reasons[k] = (f"{in_cell[cell[at]]} rows in the {frequency} period starting {grid[p[at]]:%Y-%m-%d}"
                      f"{_at(series, order[at])}: data finer than {frequency}, or mixed; its rows would be summed")
    for k in np.flatnonzero(moved):
        one, other = order[starts[k]], order[moved_at[k]]
        reasons[k] = (f"dates at different places in their {frequency} periods: {_dated(dates, one)}"
                      f"{_at(series, one)} but {_dated(dates, other)}{_at(series, other)}: not one value per "
                      f"{frequency} period")
    for k in np.flatnonzero(coarse):
        every = f"{low[k]}" + (f"-{high[k]}" if high[k] > low[k] else "")
        reasons[k] = (f"values every {every} periods: data coarser than {frequency}, whose periods between "
                      f"would be {fills}")
    chosen = np.array(sorted(reasons), dtype="int64")
    return pd.DataFrame({
        "unique_id": uids[c[starts[chosen]]], "reason_code": "wrong_frequency",
        "reason": [reasons[k] + "; series left out of gold: fix the file or the frequency setting" for k in chosen],
        "n_periods": p[last[chosen]] - p[starts[chosen]] + 1, "first_ds": grid[p[starts[chosen]]],
        "last_ds": grid[p[last[chosen]]]})


def _interpolate(values: np.ndarray) -> np.ndarray:
    """Linear interpolation of NaN cells between known ones; every series' run starts and ends known."""
    index = np.arange(len(values))
    known = ~np.isnan(values)
    before = np.maximum.accumulate(np.where(known, index, -1))
    after = np.minimum.accumulate(np.where(known, index, len(values))[::-1])[::-1]
    gap = ~known
    share = (index[gap] - before[gap]) / (after[gap] - before[gap])
    filled = values.copy()
    filled[gap] = values[before[gap]] + (values[after[gap]] - values[before[gap]]) * share
    return filled


def future_rows(series: pd.DataFrame) -> np.ndarray:
    """Rows of a series file after the series' last value (y empty, ds later): they give the regressors'
    planned future, not sales. A series without any value has none: it is excluded as missing_values."""
    dates = pd.to_datetime(series["ds"])
    reported = series["y"].notna().to_numpy()
    last = dates.where(reported).groupby(series["unique_id"].to_numpy()).transform("max")
    return (~reported & (dates > last)).to_numpy()


@dataclass(frozen=True)
class _SeriesRows:
    """A series file's rows as codes, with what is known per row before any grid is laid."""

    series: pd.DataFrame
    code: np.ndarray
    uids: np.ndarray
    ds: pd.Series
    y: np.ndarray
    kept: np.ndarray  # a value of a series whose dates fit the frequency
    misfit: pd.DataFrame
    missing: pd.DataFrame
    ahead: list[str]


def _series_rows(series: pd.DataFrame | None, settings: Settings) -> _SeriesRows | None:
    ahead: list[str] = []
    if series is not None and settings.regressors.series_columns and not series.empty:
        future = future_rows(series)
        ahead = sorted(series.loc[future, "unique_id"].astype(str).unique())
        series = series[~future]
    if series is None or series.empty:
        return None
    series = series.reset_index(drop=True)
    code, labels = pd.factorize(series["unique_id"])
    code, uids, _ = _sorted_codes(code, np.asarray(labels).astype(str).astype(object))
    dates = pd.to_datetime(series["ds"]).dt.normalize()
    ds = period_start(dates, settings.frequency)
    misfit = _misfits(series, code, dates, ds, uids, settings)
    fits = ~np.isin(uids[code], misfit["unique_id"].to_numpy())
    y = pd.to_numeric(series["y"]).to_numpy(dtype="float64")
    if settings.missing_periods == "zero":
        y = np.where(np.isnan(y), 0.0, y)
    kept = fits & ~np.isnan(y)

    never = np.setdiff1d(np.unique(code[fits]), code[kept])
    span = pd.DataFrame({"code": code, "ds": ds}).groupby("code")["ds"].agg(["min", "max"])
    missing = pd.DataFrame({
        "unique_id": uids[never], "reason_code": "missing_values", "n_periods": 0,
        "first_ds": span["min"].reindex(never).to_numpy(), "last_ds": span["max"].reindex(never).to_numpy(),
        "reason": ("y missing in all rows (" + span["min"].reindex(never).dt.strftime("%Y-%m-%d") + " to "
                   + span["max"].reindex(never).dt.strftime("%Y-%m-%d") + "): nothing to forecast").to_numpy()})
    return _SeriesRows(series, code, uids, ds, y, kept, misfit, missing, ahead)


def _spans(rows: _SeriesRows) -> pd.DataFrame:
    frame = pd.DataFrame({"unique_id": rows.uids[rows.code[rows.kept]], "ds": rows.ds[rows.kept].to_numpy()})
    spans = frame.groupby("unique_id", sort=True)["ds"].agg(first_ds="min", last_ds="max").reset_index()
    return spans.assign(ahead=spans["unique_id"].isin(rows.ahead))


def series_spans(series: pd.DataFrame | None, settings: Settings) -> pd.DataFrame:
    """unique_id, first_ds, last_ds (first and last period with a value) and ahead (rows after its last value
    give its regressors' future) of each series of ``series`` with a value whose dates fit the frequency."""
    rows = _series_rows(series, settings)
    if rows is None:
        return pd.DataFrame({"unique_id": pd.Series(dtype=object), "first_ds": pd.Series(dtype="datetime64[ns]"),
                             "last_ds": pd.Series(dtype="datetime64[ns]"), "ahead": pd.Series(dtype=bool)})
    return _spans(rows)


def series_facts(spans: pd.DataFrame, settings: Settings) -> SeriesFacts | None:
    """The facts every bucket shares, from the ``series_spans`` of all series (None when none has a value)."""
    if spans.empty:
        return None
    last = spans["last_ds"].to_numpy()
    reach = _quarter_reach(last)
    if settings.missing_periods == "zero":
        last = np.where(spans["ahead"].to_numpy(), last, np.maximum(last, reach))
    return SeriesFacts(first=pd.Timestamp(spans["first_ds"].min()), last=pd.Timestamp(spans["last_ds"].max()),
                       reach=pd.Timestamp(reach), end=pd.Timestamp(_quarter_reach(last)))


def build_gold_from_series(series: pd.DataFrame, settings: Settings,
                           facts: SeriesFacts | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gold table and excluded series from pre-aggregated series (``raw.series``); grain is [product_id].

    A period without a value (no row, or an empty y) follows ``settings.missing_periods``: 'zero' fills it
    with 0 from a series' first value to the latest period a quarter of the series reach (or its own last
    value, if later); 'not_reported' interpolates it linearly between two values (flagged ``imputed``)
    and ends the series at its last value. With regressors declared (settings.regressors.series_columns),
    the rows after a series' last value are its regressors' future (``future_rows``): never sales, not even
    zeros, so with 'zero' such a series ends at its last value. ``facts`` are those of all series when
    ``series`` is one bucket of them (default: these series')."""
    grain = ["product_id"]
    rows = _series_rows(series, settings)
    if rows is None:
        return _gold_frame({}, grain), _finish_excluded([])
    series, code, uids, ds, y, kept = rows.series, rows.code, rows.uids, rows.ds, rows.y, rows.kept
    if not kept.any():
        return _gold_frame({}, grain), _finish_excluded([rows.misfit, rows.missing])
    facts = facts or series_facts(_spans(rows), settings)
    zero = settings.missing_periods == "zero"

    periods = pd.date_range(facts.first, facts.last, freq=_offset(settings.frequency))
    cell_code, cell_pos, cell_y = code[kept], periods.searchsorted(ds[kept].to_numpy()), y[kept]
    first = np.full(len(uids), len(periods), dtype="int64")
    np.minimum.at(first, cell_code, cell_pos)
    last = np.full(len(uids), -1, dtype="int64")
    np.maximum.at(last, cell_code, cell_pos)
    if zero:
        # Zeros run up to the latest period a quarter of the series reach: one series reporting early
        # must not give all the others a zero week.
        has = last >= 0
        last = np.where(has & ~np.isin(uids, rows.ahead), np.maximum(last, periods.searchsorted(facts.reach)), last)
    grid_code, grid_pos, length = _grid(first, last)
    values = np.full(len(grid_code), np.nan)
    values[np.searchsorted(grid_code * len(periods) + grid_pos, cell_code * len(periods) + cell_pos)] = cell_y
    imputed = np.isnan(values)
    values = np.where(imputed, 0.0, values) if zero else _interpolate(values)
    gold = {"unique_id": uids[grid_code], "ds": periods[grid_pos].to_numpy(), "y": values,
            "promo_share": np.zeros(len(values)), "imputed": imputed & (not zero), "product_id": uids[grid_code]}
    present = [column for column in PRODUCT_ATTRIBUTES if column in series]
    if present:
        attributes = series[present].groupby(code).first().reindex(range(len(uids)))
        for column in present:
            gold[column] = attributes[column].to_numpy(dtype=object)[grid_code]

    others = _classify(uids, length, grid_pos, values, periods, settings, None, periods.searchsorted(facts.end))
    return _gold_frame(gold, grain), _finish_excluded([rows.misfit, rows.missing, others])


def build_gold(tables: dict[str, pd.DataFrame], settings: Settings,
               facts: OrderFacts | SeriesFacts | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gold table and excluded series from the raw tables of ``settings.source``; ``facts``: those of all
    the data when ``tables`` hold one bucket of series (gold/buckets.py)."""
    if settings.source == "series":
        return build_gold_from_series(tables.get("series"), settings, facts)
    return build_gold_from_orders(tables.get("sales_orders"), tables.get("products"), tables.get("customers"),
                                  tables.get("promotions"), settings, facts)
