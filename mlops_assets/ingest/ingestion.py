"""Reading one landing file into canonical rows, and the rows it had to reject with the reason why.

Every value is read as text first, so a bad cell is reported where it is (file, line, column) instead of
turning a whole column into strings or failing the whole file. A file is refused as a whole only when
nothing in it can be trusted: empty, not a table, or a required column missing.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

REJECTED_COLUMNS = ["table_name", "source_file", "source_row", "column_name", "reason", "raw_record",
                    "rejected_at"]
LANDING_SUFFIXES = (".csv", ".parquet")
# Writers put a file under a temporary name and rename it when complete; half-written files are skipped.
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
# Tokens that mean "no value" in a date or number cell (ids are taken literally: "NA" may be an id).
_MISSING = {"", "NA", "na", "N/A", "n/a", "NaN", "nan", "NAN", "null", "NULL", "Null", "None", "none"}
# Day-first, as French exports write them; ISO dates are tried before these.
_DATE_FORMATS = ("%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%Y/%m/%d", "%d/%m/%y", "%d/%m/%Y %H:%M",
                 "%d/%m/%Y %H:%M:%S")
_ID_TABLES = {"product_id": "raw.products", "customer_id": "raw.customers"}


class LandingFileError(ValueError):
    """The whole file is unusable; the message names the file, what is wrong and what to do."""


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
        bounds={"unit_price": (0.0, np.inf)},
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
        dates=("ds",), numbers=("y",),
    ),
}


def list_landing_files(folder: Path) -> list[Path]:
    """Complete CSV and Parquet files of a landing folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir()
         if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in LANDING_SUFFIXES
         and not p.name.lower().endswith(TEMP_SUFFIXES)),
        key=lambda p: p.name,
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_csv(path: Path) -> tuple[pd.DataFrame, bool]:
    """The table as text cells, and whether any cell may carry spaces to strip."""
    data = path.read_bytes()
    if not data:
        raise LandingFileError(f"{path}: the file is empty (0 bytes). Delete it, or replace it with the "
                               "complete export (write it under a .tmp name and rename it when done).")
    if b"\x00" in data[:65536]:
        raise LandingFileError(f"{path}: this is not a text CSV file (it holds binary data). Export the "
                               "table as CSV (comma-separated, UTF-8) or Parquet and replace the file.")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise LandingFileError(f"{path}: the text encoding is neither UTF-8 nor Windows-1252; re-export it "
                               "as UTF-8 CSV.")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False,
                            skip_blank_lines=False, index_col=False)
    except pd.errors.EmptyDataError as exc:
        raise LandingFileError(f"{path}: no header row found; the first line must name the columns.") from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise LandingFileError(f"{path}: not a readable CSV table ({exc}). Check the quoting and the "
                               "number of fields on that line, then replace the file.") from exc
    # Stripping every cell is the slowest step of a large file; most exports have nothing to strip.
    if " " not in text and "\t" not in text:
        return frame, False
    return frame, text[:1] == " " or any(p in text for p in (" ,", ", ", " \n", "\n ", " \r", "\t"))


def _read_parquet(path: Path) -> tuple[pd.DataFrame, bool]:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise LandingFileError(f"{path}: not a readable Parquet file ({exc}). Replace it with a complete "
                               "Parquet or CSV export.") from exc
    text = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            values = values.dt.strftime("%Y-%m-%d %H:%M:%S")
        text[str(column)] = values.astype("string").fillna("").astype(object)
    return pd.DataFrame(text, index=frame.index).reset_index(drop=True), True


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
            hint = next((f" The header looks '{d}'-separated: save the file comma-separated."
                         for d in (";", "\t", "|") if len(found) == 1 and d in str(found[0])), "")
            raise LandingFileError(
                f"{path}: required column '{column}'{mapped} is missing (columns found: "
                f"{', '.join(map(str, found))}).{hint} Map it in settings column_mapping.{spec.name} "
                "or fix the file.")

    def cells(column: str) -> pd.Series | str:
        if column not in source:
            return ""
        return frame[source[column]].str.strip() if strip else frame[source[column]]

    return pd.DataFrame({c: cells(c) for c in spec.columns}, index=frame.index)


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


def read_landing_file(path: Path, table: str, *, landing_root: Path,
                      column_mapping: dict[str, str] | None = None,
                      known_ids: dict[str, set[str]] | None = None, today: date | None = None,
                      ingested_at: datetime | None = None) -> IngestResult:
    """Read and validate one landing file: the good rows in canonical form, and one entry per problem."""
    if table not in TABLES:
        raise ValueError(f"unknown landing table {table!r}; known: {sorted(TABLES)}")
    spec, path = TABLES[table], Path(path)
    today = today or date.today()
    ingested_at = pd.Timestamp(ingested_at or datetime.now()).floor("s")
    try:
        source_file = path.resolve().relative_to(Path(landing_root).resolve()).as_posix()
    except ValueError:
        source_file = path.name
    original, strip = _read_parquet(path) if path.suffix.lower() == ".parquet" else _read_csv(path)
    values = _to_canonical(original, spec, column_mapping or {}, path, strip)
    # Blank lines are no data; dropping them keeps the line numbers of the others right.
    blank = (original.iloc[:, 0] == "").to_numpy(dtype=bool)
    if blank.any():
        blank[blank] = (original[blank] == "").to_numpy(dtype=bool).all(axis=1)
    original, values = original[~blank], values[~blank]
    line = pd.Series(original.index.to_numpy(dtype=np.int64) + 2, index=original.index)

    problems: list[tuple[pd.Series, str, pd.Series]] = []

    def flag(mask: pd.Series, column: str, reason: Callable[[pd.Series], pd.Series] | str) -> None:
        """Record a problem; ``reason`` builds the messages of the flagged rows only (the rare path)."""
        if mask.any():
            problems.append((mask, column, reason if isinstance(reason, str) else reason(mask)))

    def quoted(column: str) -> Callable[[pd.Series], pd.Series]:
        return lambda m: column + " '" + values.loc[m, column] + "'"

    def day(column: str, m: pd.Series) -> pd.Series:
        return typed[column][m].dt.strftime("%Y-%m-%d")

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
        if low == 0 and high == np.inf:
            flag(typed[column] < 0, column, lambda m, t=text: t(m) + " is negative")
        else:
            flag((typed[column] < low) | (typed[column] > high), column,
                 lambda m, t=text, r=f"{low:g}-{high:g}": t(m) + f" is outside {r}")
    limit = pd.Timestamp(today)
    for column in spec.not_future:
        flag(typed[column] > limit, column,
             lambda m, c=column: c + " " + day(c, m) + f" is in the future (today is {limit:%Y-%m-%d})")
    for first, later in spec.ordered:
        flag(typed[later] < typed[first], later,
             lambda m, a=first, b=later: b + " " + day(b, m) + f" is before {a} " + day(a, m))
    for column, ids in (known_ids or {}).items():
        if column in spec.columns and ids:
            flag(~missing[column] & ~values[column].isin(ids), column,
                 lambda m, c=column: quoted(c)(m) + f" is unknown (not in {_ID_TABLES.get(c, 'the ids')})")

    bad = pd.Series(False, index=values.index)
    for mask, _, _ in problems:
        bad |= mask
    # Duplicates are looked for among otherwise valid rows, so the row kept is one that is kept.
    keys = pd.DataFrame({c: typed.get(c, values[c]) for c in spec.key})[~bad]
    first_line = line[~bad].groupby([keys[c] for c in spec.key], sort=False).transform("min")
    duplicate = (line[~bad] != first_line).reindex(values.index, fill_value=False)
    flag(duplicate, "", lambda m: "duplicate of line " + first_line[m[m].index].astype(str)
         + f" (same {', '.join(spec.key)})")
    bad |= duplicate

    rows = pd.DataFrame({c: typed[c] if c in typed else values[c].where(~missing[c], None)
                         for c in spec.columns})[~bad]
    rows["source_file"], rows["source_row"], rows["ingested_at"] = source_file, line[~bad], ingested_at
    rows = rows.astype({**spec.dtypes, "source_row": "int64", "ingested_at": "datetime64[ns]"})
    if not _is_sorted(rows, spec.key):
        rows = rows.sort_values(list(spec.key), kind="stable")
    rows = rows.reset_index(drop=True)
    return IngestResult(rows, _rejected(problems, original, line, spec.name, source_file, ingested_at))


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
    frame["raw_record"] = [json.dumps({str(k): v for k, v in r.items()}, ensure_ascii=False) for r in records]
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


def merge_by_key(existing: pd.DataFrame, new: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Rows of ``new`` replace the rows of ``existing`` with the same key (a later file corrects a row)."""
    frames = [f for f in (existing, new) if len(f)]
    if not frames:
        return new.iloc[0:0].reset_index(drop=True) if len(new.columns) else existing.iloc[0:0]
    merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    merged = merged.drop_duplicates(subset=key, keep="last")
    return merged.sort_values(key, kind="stable", ignore_index=True)
