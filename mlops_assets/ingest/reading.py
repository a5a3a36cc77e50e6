"""A landing file as a table of text cells, each row with the line of the file it starts on.

CSV (comma), TSV (tab), either gzip-compressed, and Parquet. The line numbers follow the file a user opens
in an editor: a quoted field that holds a line break makes its record span several lines, and the records
after it keep their true line. A line with more fields than the header is kept aside as a row problem
(the other rows are read), not a reason to refuse the whole file.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

# Suffixes read, longest first so that ".csv.gz" wins over ".gz".
READABLE_SUFFIXES = (".csv.gz", ".tsv.gz", ".parquet", ".csv", ".tsv")
# A stored or reported value is cut to this many characters: one bad cell must not bloat an event or a log.
SHOWN_CHARS = 80
RECORD_CHARS = 1000


class LandingFileError(ValueError):
    """The whole file is unusable; the message names the file, what is wrong and what to do."""


@dataclass
class RawTable:
    """Text cells under the file's own header; ``line`` is the 1-based line each row starts on."""

    frame: pd.DataFrame
    line: np.ndarray
    strip: bool  # whether any cell may carry spaces to strip
    longest_record: int  # the longest record in bytes: no cell is longer, so most files skip measuring cells
    extra: dict[int, list[str]] = field(default_factory=dict)  # row position -> fields beyond the header


def readable_suffix(name: str) -> str | None:
    lower = name.lower()
    return next((s for s in READABLE_SUFFIXES if lower.endswith(s)), None)


def shorten(value: object, limit: int = SHOWN_CHARS) -> str:
    """A value as text, cut with its full length named when longer than ``limit``."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def read_table(path: Path) -> RawTable:
    suffix = readable_suffix(path.name)
    if suffix == ".parquet":
        return _read_parquet(path)
    return _read_delimited(path, "\t" if suffix and suffix.startswith(".tsv") else ",")


def _decode(path: Path) -> str:
    data = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise LandingFileError(f"{path}: not a complete gzip file ({exc}). Replace it with the complete "
                                   "compressed export.") from exc
    if not data:
        raise LandingFileError(f"{path}: the file is empty (0 bytes). Delete it, or replace it with the "
                               "complete export (write it under a .tmp name and rename it when done).")
    if b"\x00" in data[:65536]:
        raise LandingFileError(f"{path}: this is not a text CSV file (it holds binary data). Export the "
                               "table as CSV (comma-separated, UTF-8) or Parquet and replace the file.")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise LandingFileError(f"{path}: the text encoding is neither UTF-8 nor Windows-1252; re-export it "
                           "as UTF-8 CSV.")


def _line_ends(data: np.ndarray) -> np.ndarray:
    """Positions of the characters that end a line: a line feed, or a carriage return not before one."""
    cr = data == 13
    cr[:-1] &= data[1:] != 10
    return np.flatnonzero((data == 10) | cr)


def _record_starts(data: np.ndarray, rows: int) -> tuple[np.ndarray, int] | None:
    """The line each of ``rows`` records starts on, and the longest record in bytes; None when unsure.

    A line break ends a record when the quotes before it are even in number: inside a quoted value they
    are odd, and a doubled quote inside a value adds two. The count of records found must match the
    parser's, else (a stray quote inside an unquoted value) the caller re-reads record by record.
    """
    ends = _line_ends(data)
    trailing = int(len(ends) > 0 and ends[-1] == len(data) - 1)  # the final line break starts no record
    if rows == len(ends) - trailing:  # one line per record, the common case
        return np.arange(rows, dtype=np.int64) + 2, int(np.diff(ends, prepend=-1, append=len(data)).max())
    quotes = np.flatnonzero(data == 34)
    boundary = np.flatnonzero(np.searchsorted(quotes, ends) % 2 == 0)
    starts = boundary + 2
    if trailing and len(boundary) and boundary[-1] == len(ends) - 1:
        starts = starts[:-1]
    if len(starts) != rows:
        return None
    return starts.astype(np.int64), int(np.diff(ends[boundary], prepend=-1, append=len(data)).max())


def _may_strip(text: str) -> bool:
    # Stripping every cell is the slowest step of a large file; most exports have nothing to strip.
    if " " not in text and "\t" not in text:
        return False
    return text[:1] == " " or any(p in text for p in (" ,", ", ", " \n", "\n ", " \r", "\t"))


def _read_delimited(path: Path, sep: str) -> RawTable:
    text = _decode(path)
    strip, data = _may_strip(text), np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                            skip_blank_lines=False, index_col=False)
    except pd.errors.EmptyDataError as exc:
        raise LandingFileError(f"{path}: no header row found; the first line must name the columns.") from exc
    except (pd.errors.ParserError, ValueError) as exc:
        # A ragged line or a quote left open: the record-by-record reader finds which line, and keeps the rest.
        return _read_records(text, sep, path, strip, str(exc))
    found = _record_starts(data, len(frame))
    if found is None:
        return _read_records(text, sep, path, strip, "")
    return RawTable(frame, found[0], strip, found[1])


def _unique_names(header: list[str]) -> list[str]:
    """Repeated column names get a suffix, as pandas gives them (``a``, ``a.1``)."""
    seen: dict[str, int] = {}
    names = []
    for name in header:
        count = seen.get(name, 0)
        seen[name] = count + 1
        names.append(name if count == 0 else f"{name}.{count}")
    return names


def _read_records(text: str, sep: str, path: Path, strip: bool, parser_error: str) -> RawTable:
    csv.field_size_limit(2**31 - 1)  # long fields are judged (and quarantined) by the caller, not here
    reader = csv.reader(io.StringIO(text, newline=None), delimiter=sep)  # universal line ends, as pandas
    try:
        header = next(reader)
    except StopIteration as exc:
        raise LandingFileError(f"{path}: no header row found; the first line must name the columns.") from exc
    width, rows, lines, extra = len(header), [], [], {}
    end = reader.line_num
    for record in reader:
        start, end = end + 1, reader.line_num
        if len(record) > width:
            extra[len(rows)], record = record[width:], record[:width]
        rows.append(record + [""] * (width - len(record)))
        lines.append(start)
    if "EOF inside string" in parser_error and lines:
        raise LandingFileError(f"{path}: line {lines[-1]}: a quote opened on this line is never closed, so the "
                               "rest of the file would be one value. Fix the quoting and replace the file.")
    frame = pd.DataFrame(rows, columns=_unique_names(header), dtype=object)
    # A quoted cell may span lines, so the longest line does not bound it: every cell is measured.
    return RawTable(frame, np.asarray(lines, dtype=np.int64), strip, len(text), extra)


def _read_parquet(path: Path) -> RawTable:
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
    table = pd.DataFrame(text, index=frame.index).reset_index(drop=True)
    # Row numbers as a spreadsheet shows them after its header row.
    return RawTable(table, np.arange(len(table), dtype=np.int64) + 2, True, RECORD_CHARS + 1)
