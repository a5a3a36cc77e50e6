"""Reading one landing file into canonical rows, and the rows it had to reject with the reason why.

Every value is read as text first, so a bad cell is reported where it is (file, line, column) instead of
turning a whole column into strings or failing the whole file. A file is refused as a whole only when
nothing in it can be trusted: empty, not a table, or a required column missing.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.ingest.reading import (
    RECORD_CHARS,
    LandingFileError,
    RawTable,
    read_table,
    shorten,
)
from mlops_assets.schemas import PRICE_LIMIT, QUANTITY_LIMIT, VALUE_LIMIT

REJECTED_COLUMNS = ["table_name", "source_file", "source_row", "column_name", "reason", "raw_record",
                    "rejected_at"]
# Characters of one quarantined record (raw_record) at most, so that a very wide row stays small.
RECORD_BUDGET = 20_000
# Tokens that mean "no value" in a date or number cell (ids are taken literally: "NA" may be an id).
_MISSING = {"", "NA", "na", "N/A", "n/a", "NaN", "nan", "NAN", "null", "NULL", "Null", "None", "none"}
# Day-first, as French exports write them; ISO dates are tried before these.
_DATE_FORMATS = ("%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%Y/%m/%d", "%d/%m/%y", "%d/%m/%Y %H:%M",
                 "%d/%m/%Y %H:%M:%S")
_ID_TABLES = {"product_id": "raw.products", "customer_id": "raw.customers"}
# How the reason of an unknown id reads; rows rejected only for this are re-admitted when the id arrives.
UNKNOWN_ID = " is unknown (not in "


@dataclass
class IngestResult:
    rows: pd.DataFrame
    rejected: pd.DataFrame


@dataclass(frozen=True)
class TableSpec:
    """What a landing table must hold; ``required`` columns must exist, ``optional`` ones may be absent."""

    name: str
    required: tuple[str, ...]
    key: tuple[str, ...]
    optional: tuple[str, ...] = ()
    not_null: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    not_future: tuple[str, ...] = ()
    # (date, value): a row with a value is an actual and must not be dated after today; without one it is a
    # planned row, which may be.
    actual_dates: tuple[tuple[str, str], ...] = ()
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    ordered: tuple[tuple[str, str], ...] = ()  # (earlier, later) date pairs

    @property
    def columns(self) -> list[str]:
        return [*self.required, *self.optional]

    @property
    def dtypes(self) -> dict[str, str]:
        return {c: "datetime64[ns]" if c in self.dates else "float64" if c in self.numbers else "object"
                for c in self.columns}


TABLES: dict[str, TableSpec] = {
    "sales_orders": TableSpec(
        "sales_orders",
        required=("order_id", "order_date", "customer_id", "product_id", "quantity", "unit_price"),
        key=("order_id", "product_id"),
        not_null=("order_id", "order_date", "customer_id", "product_id", "quantity", "unit_price"),
        dates=("order_date",), numbers=("quantity", "unit_price"), not_future=("order_date",),
        bounds={"quantity": (-QUANTITY_LIMIT, QUANTITY_LIMIT), "unit_price": (0.0, PRICE_LIMIT)},
    ),
    "products": TableSpec(
        "products", required=("product_id", "product_name"), key=("product_id",),
        optional=("brand", "category", "launch_date", "discontinued_date"), not_null=("product_id",),
        dates=("launch_date", "discontinued_date"), ordered=(("launch_date", "discontinued_date"),),
    ),
    "customers": TableSpec(
        "customers", required=("customer_id", "customer_name"), key=("customer_id",),
        optional=("channel", "region"), not_null=("customer_id",),
    ),
    "promotions": TableSpec(
        "promotions",
        required=("promotion_id", "product_id", "start_date", "end_date", "discount_pct"),
        key=("promotion_id",), optional=("customer_id",),
        not_null=("promotion_id", "product_id", "start_date", "end_date", "discount_pct"),
        dates=("start_date", "end_date"), numbers=("discount_pct",),
        bounds={"discount_pct": (0.0, 100.0)}, ordered=(("start_date", "end_date"),),
    ),
    "series": TableSpec(
        "series", required=("unique_id", "ds", "y"), key=("unique_id", "ds"),
        optional=("product_name", "brand", "category"), not_null=("unique_id", "ds"),
        dates=("ds",), numbers=("y",), bounds={"y": (-VALUE_LIMIT, VALUE_LIMIT)}, actual_dates=(("ds", "y"),),
    ),
}


def table_spec(table: str, extra_numbers: Sequence[str] = (), extra_texts: Sequence[str] = ()) -> TableSpec:
    """The contract of a landing table, with ``extra_numbers``: optional numeric columns the settings declare
    (regressors.series_columns), each within the value limit, and ``extra_texts``: optional text columns they
    declare (regressors.statics); an empty cell is kept as NULL."""
    if table not in TABLES:
        raise ValueError(f"unknown landing table {table!r}; known: {sorted(TABLES)}")
    spec = TABLES[table]
    extra = tuple(c for c in extra_numbers if c not in spec.columns)
    texts = tuple(c for c in extra_texts if c not in spec.columns and c not in extra)
    if not extra and not texts:
        return spec
    return replace(spec, optional=(*spec.optional, *extra, *texts), numbers=(*spec.numbers, *extra),
                   bounds={**spec.bounds, **dict.fromkeys(extra, (-VALUE_LIMIT, VALUE_LIMIT))})


def _to_canonical(frame: pd.DataFrame, spec: TableSpec, mapping: dict[str, str], path: Path,
                  strip: bool) -> pd.DataFrame:
    """Rename the file's columns to canonical names (mapping first, then case-insensitive) and check them."""
    unknown = sorted(set(mapping) - set(spec.columns))
    if unknown:
        raise ValueError(f"column_mapping.{spec.name} maps unknown columns {unknown}; "
                         f"canonical columns are {spec.columns}")
    found = list(frame.columns)
    by_lower = {str(c).strip().lower(): c for c in reversed(found)}
    source = {}
    for column in spec.columns:
        wanted = mapping.get(column, column)
        match = wanted if wanted in found else by_lower.get(wanted.strip().lower())
        if match is not None:
            source[column] = match
        elif column in spec.required:
            mapped = f" (mapped from '{wanted}')" if column in mapping else ""
            hint = _separator_hint(path, found)
            raise LandingFileError(
                f"{path}: required column '{column}'{mapped} is missing (columns found: "
                f"{shorten(', '.join(map(str, found)), RECORD_CHARS)}).{hint} Map it in settings "
                f"column_mapping.{spec.name} "
                "or fix the file.")

    def cells(column: str) -> pd.Series | str:
        if column not in source:
            return ""
        return frame[source[column]].str.strip() if strip else frame[source[column]]

    return pd.DataFrame({c: cells(c) for c in spec.columns}, index=frame.index)


_SEPARATOR_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def _separator_hint(path: Path, found: list) -> str:
    """When the whole header is one column, the separator it seems to use instead of the file's own."""
    used = "\t" if any(suffix == ".tsv" for suffix in path.suffixes) else ","
    if len(found) != 1:
        return ""
    for d, name in _SEPARATOR_NAMES.items():
        if d != used and d in str(found[0]):
            kind = "a .tsv file is read tab-separated" if used == "\t" else "a .csv file is read comma-separated"
            fix = "rename it to .csv" if d == "," else f"save it {_SEPARATOR_NAMES[used]}-separated"
            return f" The header looks {name}-separated ('{d}') but {kind}: {fix}."
    return ""


def _parse_dates(values: pd.Series) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # mixed offsets: handled just below
        parsed = pd.to_datetime(values, format="ISO8601", errors="coerce")
    if parsed.dtype != "datetime64[ns]":
        # A date column wants the calendar day the file shows, so a UTC offset is dropped, not applied.
        local = values.str.replace(r"(T[\d:.]+)(?:Z|[+-]\d\d:?\d\d)$", r"\1", regex=True)
        parsed = pd.to_datetime(local, format="ISO8601", errors="coerce")
    for fmt in _DATE_FORMATS:
        retry = parsed.isna() & (values != "")
        if not retry.any():
            break
        parsed = parsed.where(~retry, pd.to_datetime(values[retry], format=fmt, errors="coerce"))
    return parsed.astype("datetime64[ns]").dt.normalize()


def landing_name(path: Path, landing_root: Path) -> str:
    """The name under the landing root, as the user put it there (a link inside the zone keeps its own name)."""
    return next((path.absolute().relative_to(root).as_posix() for root in
                 (Path(landing_root).absolute(), Path(landing_root).resolve())
                 if path.absolute().is_relative_to(root)), path.name)


def read_landing_file(path: Path, table: str, *, landing_root: Path,
                      column_mapping: dict[str, str] | None = None,
                      known_ids: dict[str, set[str]] | None = None, today: date | None = None,
                      ingested_at: datetime | None = None, extra_numbers: Sequence[str] = ()) -> IngestResult:
    """Read and validate one landing file: the good rows in canonical form, and one entry per problem."""
    spec, path = table_spec(table, extra_numbers), Path(path)
    return validate_table(read_table(path), spec, path=path, source_file=landing_name(path, landing_root),
                          column_mapping=column_mapping, known_ids=known_ids, today=today or date.today(),
                          ingested_at=pd.Timestamp(ingested_at or datetime.now()).floor("s"))


def validate_table(raw: RawTable, spec: TableSpec, *, path: Path, source_file: str,
                   column_mapping: dict[str, str] | None, known_ids: dict[str, set[str]] | None,
                   today: date, ingested_at: pd.Timestamp, duplicates: bool = True) -> IngestResult:
    """The rows of one table of text cells that meet the contract, and one entry per problem found.

    ``duplicates=False`` leaves rows that repeat a key in (a chunk of a file whose duplicates are found
    across all its chunks: ``duplicate_entries``).
    """
    original = raw.frame
    values = _to_canonical(original, spec, column_mapping or {}, path, raw.strip)
    line = pd.Series(raw.line, index=original.index)
    extra = pd.Series("", index=original.index, dtype=object)
    if raw.extra:
        extra.iloc[list(raw.extra)] = [", ".join(fields) for fields in raw.extra.values()]
    # Blank lines are no data; dropping them keeps the line numbers of the others right.
    blank = (original.iloc[:, 0] == "").to_numpy(dtype=bool) if len(original.columns) else np.zeros(0, bool)
    if blank.any():
        blank[blank] = (original[blank] == "").to_numpy(dtype=bool).all(axis=1) & (extra[blank] == "")
    original, values, line, extra = original[~blank], values[~blank], line[~blank], extra[~blank]

    problems: list[tuple[pd.Series, str, pd.Series]] = []

    def flag(mask: pd.Series, column: str, reason: Callable[[pd.Series], pd.Series] | str) -> None:
        """Record a problem; ``reason`` builds the messages of the flagged rows only (the rare path)."""
        if mask.any():
            problems.append((mask, column, reason if isinstance(reason, str) else reason(mask)))

    def quoted(column: str) -> Callable[[pd.Series], pd.Series]:
        return lambda m: column + " '" + values.loc[m, column].map(shorten) + "'"

    def day(column: str, m: pd.Series) -> pd.Series:
        return typed[column][m].dt.strftime("%Y-%m-%d")

    width = len(original.columns)
    flag(extra != "", "", lambda m: f"more fields than the {width} of the header (extra: "
         + extra[m].map(shorten) + "); a separator inside an unquoted value?")
    for column in spec.columns if raw.longest_record > RECORD_CHARS else ():
        flag(values[column].str.len() > RECORD_CHARS, column,
             lambda m, c=column: c + " is " + values.loc[m, c].str.len().map("{:,}".format)
             + f" characters long (limit {RECORD_CHARS:,})")
    missing = {c: values[c].isin(_MISSING) if c in (*spec.dates, *spec.numbers)
               else values[c] == "" for c in spec.columns}
    for column in spec.not_null:
        flag(missing[column], column, f"{column} is empty (a value is required)")
    typed: dict[str, pd.Series] = {}
    for column in spec.dates:
        typed[column] = _parse_dates(values[column].where(~missing[column], ""))
        flag(~missing[column] & typed[column].isna(), column,
             lambda m, c=column: quoted(c)(m) + " is not a date (expected yyyy-mm-dd or dd/mm/yyyy)")
    for column in spec.numbers:
        number = pd.to_numeric(values[column].where(~missing[column], ""), errors="coerce").astype("float64")
        typed[column] = number.where(np.isfinite(number))
        flag(~missing[column] & number.isna(), column, lambda m, c=column: quoted(c)(m) + " is not a number")
        flag(np.isinf(number), column, lambda m, c=column: quoted(c)(m) + " is not a finite number")
    for column, (low, high) in spec.bounds.items():
        def text(m: pd.Series, c: str = column) -> pd.Series:
            return c + " " + typed[c][m].map("{:g}".format)
        flag(typed[column] < low, column,
             lambda m, t=text, b=low: t(m) + (" is negative" if b == 0 else f" is below the limit {b:g}"))
        flag(typed[column] > high, column, lambda m, t=text, b=high: t(m) + f" is above the limit {b:g}")
    limit = pd.Timestamp(today)

    def future(column: str, also: str = "") -> Callable[[pd.Series], pd.Series]:
        return lambda m: column + " " + day(column, m) + f" is in the future (today is {limit:%Y-%m-%d}){also}"

    for column in spec.not_future:
        flag(typed[column] > limit, column, future(column))
    for column, value in spec.actual_dates:
        flag((typed[column] > limit) & typed[value].notna(), column,
             future(column, f": an actual {value} cannot be dated after today; leave {value} empty for a "
                            "planned period"))
    for first, later in spec.ordered:
        flag(typed[later] < typed[first], later,
             lambda m, a=first, b=later: b + " " + day(b, m) + f" is before {a} " + day(a, m))
    for column, ids in (known_ids or {}).items():
        if column in spec.columns and ids:
            flag(~missing[column] & ~values[column].isin(ids), column,
                 lambda m, c=column: quoted(c)(m) + f"{UNKNOWN_ID}{_ID_TABLES.get(c, 'the ids')})")

    bad = pd.Series(False, index=values.index)
    for mask, _, _ in problems:
        bad |= mask
    if duplicates:
        # Duplicates are looked for among otherwise valid rows, so the row kept is one that is kept.
        keys = pd.DataFrame({c: typed.get(c, values[c]) for c in spec.key})[~bad]
        first_line = line[~bad].groupby([keys[c] for c in spec.key], sort=False).transform("min")
        duplicate = (line[~bad] != first_line).reindex(values.index, fill_value=False)
        flag(duplicate, "", lambda m: duplicate_reason(first_line[m[m].index].astype(str), spec))
        bad |= duplicate

    rows = pd.DataFrame({c: typed[c] if c in typed else values[c].where(~missing[c], None)
                         for c in spec.columns})[~bad]
    rows["source_file"], rows["source_row"], rows["ingested_at"] = source_file, line[~bad], ingested_at
    rows = rows.astype({**spec.dtypes, "source_row": "int64", "ingested_at": "datetime64[ns]"})
    if not _is_sorted(rows, spec.key):
        rows = rows.sort_values(list(spec.key), kind="stable")
    rows = rows.reset_index(drop=True)
    return IngestResult(rows, _rejected(problems, original, line, spec.name, source_file, ingested_at))


def duplicate_reason(first_line: pd.Series, spec: TableSpec) -> pd.Series:
    return "duplicate of line " + first_line + f" (same {', '.join(spec.key)})"


def duplicate_entries(raw: RawTable, first_line: dict[int, int], spec: TableSpec, source_file: str,
                      rejected_at: pd.Timestamp) -> pd.DataFrame:
    """Quarantine entries of the rows of ``raw`` at the lines of ``first_line``: each repeats that line's key."""
    line = pd.Series(raw.line, index=raw.frame.index)
    mask = line.isin(list(first_line))
    reason = duplicate_reason(line[mask].map(first_line).astype(str), spec)
    return _rejected([(mask, "", reason)], raw.frame, line, spec.name, source_file, rejected_at)


def _record_json(record: dict, budget: int = RECORD_BUDGET) -> str:
    """The record as JSON, each cell cut to RECORD_CHARS and the whole to about ``budget`` characters.

    The landing file keeps the full record; the quarantine keeps enough of it to see the fault.
    """
    cells: dict[str, str] = {}
    used = 0
    for name, value in record.items():
        cell = shorten(value, RECORD_CHARS)
        used += len(str(name)) + len(cell)
        if used > budget:
            cells["..."] = f"{len(record) - len(cells)} more columns not kept"
            break
        cells[str(name)] = cell
    return json.dumps(cells, ensure_ascii=False)


def _rejected(problems: list[tuple[pd.Series, str, pd.Series]], original: pd.DataFrame, line: pd.Series,
              table: str, source_file: str, rejected_at: pd.Timestamp) -> pd.DataFrame:
    parts = [pd.DataFrame({"source_row": line[mask], "column_name": column or None,
                           "reason": reason if isinstance(reason, str) else reason.to_numpy()})
             for mask, column, reason in problems]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "rejected_at" else "int64"
                             if c == "source_row" else "object") for c in REJECTED_COLUMNS})
    frame = pd.concat(parts).sort_values("source_row", kind="stable")
    records = original.loc[frame.index].to_dict("records")
    frame["raw_record"] = [_record_json(r) for r in records]
    frame["table_name"], frame["source_file"], frame["rejected_at"] = table, source_file, rejected_at
    frame = frame.astype({"source_row": "int64", "rejected_at": "datetime64[ns]"})
    return frame[REJECTED_COLUMNS].reset_index(drop=True)


def _is_sorted(frame: pd.DataFrame, key: tuple[str, ...]) -> bool:
    """Whether the rows already follow the key (exports usually do; sorting strings is slow)."""
    ordered = np.ones(max(len(frame) - 1, 0), dtype=bool)
    for column in reversed(key):
        values = frame[column].to_numpy()
        ordered = (values[1:] > values[:-1]) | ((values[1:] == values[:-1]) & ordered)
    return bool(ordered.all())
