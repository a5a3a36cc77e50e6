"""A landing file as a table of text cells, each row with the line of the file it starts on.

CSV (comma), TSV (tab), either gzip-compressed, and Parquet. The line numbers follow the file a user opens
in an editor: a quoted field that holds a line break makes its record span several lines, and the records
after it keep their true line. A line with more fields than the header is kept aside as a row problem
(the other rows are read), not a reason to refuse the whole file. A file is read in chunks of records
(``read_chunks``), so that no more than one chunk of it is ever held.

A file is opened once (``open_landing_file``: a link is refused at the open itself, and the descriptor must be a
regular file) and every pass over it (hash, encoding survey, parse) reads that open file: a file swapped for a
link after the folder was listed, or while a batch is read, is never read.
"""

from __future__ import annotations

import codecs
import csv
import errno
import gzip
import hashlib
import io
import os
import stat
import warnings
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# Suffixes read, longest first so that ".csv.gz" wins over ".gz".
READABLE_SUFFIXES = (".csv.gz", ".tsv.gz", ".parquet", ".csv", ".tsv")
# A stored or reported value is cut to this many characters: one bad cell must not bloat an event or a log.
SHOWN_CHARS = 80
RECORD_CHARS = 1000
# Bytes read at a time when a file is surveyed (encoding, spaces, binary content).
SURVEY_BYTES = 1 << 20
# A NUL byte among the first this many bytes marks a binary file.
BINARY_PROBE = 65536


class LandingFileError(ValueError):
    """The whole file is unusable; the message names the file, what is wrong and what to do."""


class LandingFileRefused(OSError):
    """The listed name is not a regular file of the landing zone when opened (a link swapped in, a pipe, gone):
    the file is not read; the message says why, never what the name points at."""


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


def open_landing_file(path: Path, landing_root: Path | None = None) -> BinaryIO:
    """The listed file opened for reading, refusing at the open itself what is not a regular file.

    ``O_NOFOLLOW`` refuses a link in the name's last part, so a link swapped in after the listing is never
    followed; a link that was listed inside ``landing_root`` is resolved once and its target opened the same
    way. ``O_NONBLOCK`` keeps a named pipe from holding the run; ``fstat`` of the descriptor then checks what
    was opened, not what the name points at now.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        try:
            fd = os.open(path, flags)
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.EMLINK) or landing_root is None:
                raise
            target = Path(os.path.realpath(path))
            if not target.is_relative_to(Path(landing_root).resolve()):
                raise LandingFileRefused("a symbolic link to a file outside the landing zone: refused") from None
            fd = os.open(target, flags)
    except LandingFileRefused:
        raise
    except FileNotFoundError:
        raise LandingFileRefused("removed after the folder was listed: not read") from None
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EMLINK):
            raise LandingFileRefused("a symbolic link when opened (replaced after the folder was listed): "
                                     "refused") from None
        raise LandingFileRefused(f"cannot be opened ({error.strerror}): not read") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LandingFileRefused("not a regular file when opened (replaced after the folder was listed): refused")
    return os.fdopen(fd, "rb")


def handle_sha256(handle: BinaryIO) -> str:
    """SHA-256 of an open file's whole content, read from its start."""
    digest = hashlib.sha256()
    with _view(handle) as raw:
        for chunk in iter(lambda: raw.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_table(path: Path, handle: BinaryIO | None = None) -> RawTable:
    """The whole file as one table."""
    return next(read_chunks(path, None, handle))


def read_chunks(path: Path, chunk_rows: int | None, handle: BinaryIO | None = None) -> Iterator[RawTable]:
    """The file as tables of at most ``chunk_rows`` records each (None: one table); at least one table.

    ``handle``: the file as opened by ``open_landing_file`` (``path`` then only names it in messages);
    without it the path is opened so. Only one chunk's text and cells are held at a time, and every line
    number is the file's own.
    """
    if handle is None:
        with open_landing_file(path) as opened:
            yield from read_chunks(path, chunk_rows, opened)
        return
    suffix = readable_suffix(path.name)
    if suffix == ".parquet":
        yield from _parquet_chunks(path, handle, chunk_rows)
    else:
        yield from _delimited_chunks(path, handle, "\t" if suffix and suffix.startswith(".tsv") else ",", chunk_rows)


@contextmanager
def _view(handle: BinaryIO) -> Iterator[BinaryIO]:
    """The open file read again from its start, through a descriptor of its own: closing the view leaves the
    caller's file open, and nothing is opened by name."""
    with os.fdopen(os.dup(handle.fileno()), "rb") as raw:
        raw.seek(0)
        yield raw


@contextmanager
def _bytes(path: Path, handle: BinaryIO) -> Iterator[BinaryIO]:
    """The file's bytes from the start, decompressed when its name ends in .gz."""
    with _view(handle) as raw:
        if path.name.lower().endswith(".gz"):
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped
        else:
            yield raw


def _survey(path: Path, handle: BinaryIO) -> tuple[str, bool]:
    """The file's text encoding and whether any cell may carry spaces to strip, the whole file read in blocks.

    All of it is decoded before a row is used, so that a bad byte near the end chooses the encoding of the
    first rows too, as when the file was decoded at once.
    """
    try:
        with _bytes(path, handle) as data:
            first = data.read(SURVEY_BYTES)
        if not first:
            raise LandingFileError(f"{path}: the file is empty (0 bytes). Delete it, or replace it with the "
                                   "complete export (write it under a .tmp name and rename it when done).")
        if b"\x00" in first[:BINARY_PROBE]:
            raise LandingFileError(f"{path}: this is not a text CSV file (it holds binary data). Export the "
                                   "table as CSV (comma-separated, UTF-8) or Parquet and replace the file.")
        for encoding in ("utf-8-sig", "cp1252"):
            try:
                return encoding, _decoded_may_strip(path, handle, encoding)
            except UnicodeDecodeError:
                continue
    except (OSError, EOFError, zlib.error) as exc:
        raise LandingFileError(f"{path}: not a complete gzip file ({exc}). Replace it with the complete "
                               "compressed export.") from exc
    raise LandingFileError(f"{path}: the text encoding is neither UTF-8 nor Windows-1252; re-export it "
                           "as UTF-8 CSV.")


def _decoded_may_strip(path: Path, handle: BinaryIO, encoding: str) -> bool:
    """Decode the whole file (UnicodeDecodeError on a bad byte); whether any cell may carry spaces to strip."""
    decoder = codecs.getincrementaldecoder(encoding)()
    strip, before = False, None
    with _bytes(path, handle) as data:
        for block in iter(lambda: data.read(SURVEY_BYTES), b""):
            text = decoder.decode(block)
            if not strip and text:
                # The last character of the block before joins this one: a pair split between blocks counts.
                strip = _may_strip(text if before is None else before + text, before is None)
                before = text[-1]
        decoder.decode(b"", final=True)
    return strip


def _may_strip(text: str, at_start: bool) -> bool:
    # Stripping every cell is the slowest step of a large file; most exports have nothing to strip.
    if " " not in text and "\t" not in text:
        return False
    return (at_start and text[:1] == " ") or any(p in text for p in (" ,", ", ", " \n", "\n ", " \r", "\t"))


def _delimited_chunks(path: Path, handle: BinaryIO, sep: str, chunk_rows: int | None) -> Iterator[RawTable]:
    """Lines are grouped into records by their quotes: a line break ends a record when the quotes before it
    are even in number (a doubled quote inside a value adds two). pandas parses each chunk of records; when
    its count differs (a stray quote inside an unquoted value) the rest is read record by record.
    """
    encoding, strip = _survey(path, handle)
    with _bytes(path, handle) as data, io.TextIOWrapper(data, encoding=encoding, newline="") as stream:
        header, number, odd = [], 0, False
        for text in stream:
            number += 1
            header.append(text)
            odd ^= text.count('"') % 2 == 1
            if not odd:
                break
        if not header:
            raise LandingFileError(f"{path}: no header row found; the first line must name the columns.")
        lines: list[str] = []
        starts: list[int] = []
        columns, error = None, ""
        for text in stream:
            number += 1
            if not odd:
                starts.append(number)
            lines.append(text)
            if '"' in text and text.count('"') % 2:
                odd = not odd
            if not odd and chunk_rows is not None and len(starts) >= chunk_rows:
                table, error = _parse(header, lines, starts, sep, strip, path)
                if table is None:
                    break
                columns = list(table.frame.columns)
                yield table
                lines, starts = [], []
        else:
            if lines or columns is None:
                table, error = _parse(header, lines, starts, sep, strip, path)
                if table is not None:
                    yield table
                    return
            else:
                return
        # From the first record of the chunk pandas could not count, Python's csv reader takes over.
        before = starts[0] - 1 if columns is not None else 0
        records = chain(lines, stream) if columns is not None else chain(header, lines, stream)
        yield from _read_records(records, sep, path, strip, error, before, columns, chunk_rows)


def _parse(header: list[str], lines: list[str], starts: list[int], sep: str, strip: bool,
           path: Path) -> tuple[RawTable | None, str]:
    """One chunk of records under the file's header; None (and pandas' error) when pandas counts otherwise."""
    text = "".join(header) + "".join(lines)
    try:
        with warnings.catch_warnings():
            # A first record wider than the header is cut with only a warning: the csv reader keeps its extra.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                                skip_blank_lines=False, index_col=False)
    except pd.errors.EmptyDataError as exc:
        raise LandingFileError(f"{path}: no header row found; the first line must name the columns.") from exc
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as exc:
        return None, str(exc)
    if len(frame) != len(starts):
        return None, ""
    # No cell is longer than its record; a record of several lines: every cell is measured.
    longest = max(map(len, lines), default=0) if len(lines) == len(starts) else len(text)
    return RawTable(frame, np.asarray(starts, dtype=np.int64), strip, longest), ""


def _unique_names(header: list[str]) -> list[str]:
    """Repeated column names get a suffix, as pandas gives them (``a``, ``a.1``)."""
    seen: dict[str, int] = {}
    names = []
    for name in header:
        count = seen.get(name, 0)
        seen[name] = count + 1
        names.append(name if count == 0 else f"{name}.{count}")
    return names


def _read_records(records: Iterable[str], sep: str, path: Path, strip: bool, parser_error: str, before: int,
                  columns: list[str] | None, chunk_rows: int | None) -> Iterator[RawTable]:
    """Records by Python's csv reader, ``before`` lines into the file; the header first when ``columns`` is None."""
    csv.field_size_limit(2**31 - 1)  # long fields are judged (and quarantined) by the caller, not here
    reader = csv.reader(records, delimiter=sep)
    if columns is None:
        try:
            columns = _unique_names(next(reader))
        except StopIteration as exc:
            raise LandingFileError(f"{path}: no header row found; the first line must name the columns.") from exc
    width, rows, lines, extra, emitted = len(columns), [], [], {}, False
    end = reader.line_num
    for record in reader:
        start, end = end + 1, reader.line_num
        if len(record) > width:
            extra[len(rows)], record = record[width:], record[:width]
        rows.append(record + [""] * (width - len(record)))
        lines.append(before + start)
        if chunk_rows is not None and len(rows) >= chunk_rows:
            yield _records_table(rows, columns, lines, strip, extra)
            rows, lines, extra, emitted = [], [], {}, True
    if "EOF inside string" in parser_error and (lines or emitted):
        last = lines[-1] if lines else before + start
        raise LandingFileError(f"{path}: line {last}: a quote opened on this line is never closed, so the "
                               "rest of the file would be one value. Fix the quoting and replace the file.")
    if rows or not emitted:
        yield _records_table(rows, columns, lines, strip, extra)


def _records_table(rows: list[list[str]], columns: list[str], lines: list[int], strip: bool,
                   extra: dict[int, list[str]]) -> RawTable:
    # A quoted cell may span lines, so the longest line does not bound it: every cell is measured.
    return RawTable(pd.DataFrame(rows, columns=columns, dtype=object), np.asarray(lines, dtype=np.int64), strip,
                    RECORD_CHARS + 1, extra)


def _parquet_chunks(path: Path, handle: BinaryIO, chunk_rows: int | None) -> Iterator[RawTable]:
    with _view(handle) as raw:
        yield from _parquet_batches(path, raw, chunk_rows)


def _parquet_batches(path: Path, raw: BinaryIO, chunk_rows: int | None) -> Iterator[RawTable]:
    try:
        file = pq.ParquetFile(raw)
        batches = [file.read()] if chunk_rows is None else file.iter_batches(batch_size=chunk_rows)
        first, emitted = 2, False  # row numbers as a spreadsheet shows them after its header row
        for batch in batches:
            table = _text_cells(pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch,
                                first)
            first += len(table.frame)
            emitted = True
            yield table
        if not emitted:
            yield _text_cells(file.schema_arrow.empty_table(), first)
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise LandingFileError(f"{path}: not a readable Parquet file ({exc}). Replace it with a complete "
                               "Parquet or CSV export.") from exc


def _text_cells(arrow: pa.Table, first: int) -> RawTable:
    frame = arrow.to_pandas()
    text = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            values = values.dt.strftime("%Y-%m-%d %H:%M:%S")
        text[str(column)] = values.astype("string").fillna("").astype(object)
    table = pd.DataFrame(text, index=frame.index).reset_index(drop=True)
    return RawTable(table, np.arange(len(table), dtype=np.int64) + first, True, RECORD_CHARS + 1)
