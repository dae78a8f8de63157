"""Rows of a data feeder file (docs/dsl.md "Data feeders"), read as a stream.

No file is loaded whole: a read starts at a byte offset and takes one record (a CSV row, a
JSONL line, an item of a JSON array; at most MAX_ROW bytes), so the memory a source holds is
its file buffer, plus an index of two integers a row for the modes that need random access
(`random`, `shuffled`).
"""

from __future__ import annotations

import csv
import json
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

from wbsrun.dsl._json_rows import JsonItemError, array_start, read_item

__all__ = ["FORMATS", "MAX_ROW", "RowError", "RowFile", "format_of"]

MAX_ROW: Final = 1 << 20
"""Longest record of a CSV or JSONL source, in bytes."""
FORMATS: Final = ("csv", "json", "jsonl")
_EXTENSIONS: Final = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}

Row = dict[str, Any]


class RowError(Exception):
    """A record that cannot be read; `where` is `file:line` (or the file alone), `after` the
    position of the next record when the bad one could be skipped."""

    def __init__(self, where: str, message: str, after: tuple[int, int] | None = None) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message
        self.after = after


def format_of(path: str) -> str | None:
    """The format a file's extension names, or None."""
    return _EXTENSIONS.get(Path(path).suffix.lower())


class RowFile:
    """One source file: sequential reads from a cursor, random reads through an index.

    Positions are (byte offset, line number) pairs; `first` is the first record's. Blocking
    file reads: one record a pass, from a buffered file (see docs/operations.md)."""

    def __init__(
        self, path: Path, display: str, fmt: str, delimiter: str = ",", quote: str = '"'
    ) -> None:
        self.path = path
        self.display = display
        self.format = fmt
        self.delimiter = delimiter
        self.quote = quote
        self.fields: tuple[str, ...] = ()
        self.first: tuple[int, int] = (0, 0)
        self._file: IO[bytes] | None = None
        # Filled by `index()`: where each record starts.
        self.offsets: array[int] = array("q")
        self.lines: array[int] = array("q")

    # -- opening ---------------------------------------------------------------------------
    def open(self) -> None:
        """Open the file and read what precedes the records (the CSV header); RowError."""
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - held for the run
        except OSError as exc:
            raise RowError(self.display, f"cannot read the file: {exc.strerror}") from None
        if self.format == "csv":
            self._header()
        elif self.format == "json":
            try:
                self.first = array_start(self._file)
            except JsonItemError as exc:
                raise RowError(f"{self.display}:{exc.line}", exc.message) from None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _header(self) -> None:
        record, after = self._csv_record(0, 0)
        if record is None:
            raise RowError(self.display, "the file is empty: a CSV source needs a header row")
        fields = [f.strip() for f in record]
        if fields:
            fields[0] = fields[0].removeprefix("\ufeff")
        if any(not f for f in fields) or len(set(fields)) != len(fields):
            message = f"the header row needs distinct, non-empty field names, got {fields}"
            raise RowError(f"{self.display}:1", message)
        self.fields = tuple(fields)
        self.first = after

    # -- records ---------------------------------------------------------------------------
    def read(self, at: tuple[int, int]) -> tuple[Row | None, tuple[int, int]]:
        """The record at position `at` (None at the end) and the next position; RowError."""
        if self.format == "json":
            try:
                return read_item(self._seek(at[0]), at, at == self.first, MAX_ROW)
            except JsonItemError as exc:
                raise RowError(f"{self.display}:{exc.line}", exc.message, exc.after) from None
        if self.format == "jsonl":
            return self._jsonl_record(*at)
        while True:
            record, after = self._csv_record(*at)
            if record is None:
                return None, after
            if record:  # a blank line is no record
                return self._csv_row(record, at[1] + 1, after), after
            at = after

    def _seek(self, offset: int) -> IO[bytes]:
        f = self._file
        if f is None:
            raise RowError(self.display, "the source is not open")
        if f.tell() != offset:
            f.seek(offset)
        return f

    def _line(self, f: IO[bytes], line: int) -> bytes:
        raw = f.readline(MAX_ROW + 1)
        if len(raw) > MAX_ROW:
            while not raw.endswith(b"\n") and raw:  # skip the rest of it, a buffer at a time
                raw = f.readline(MAX_ROW)
            message = f"a record longer than {MAX_ROW:,} bytes"
            raise RowError(f"{self.display}:{line}", message, (f.tell(), line))
        return raw

    def _jsonl_record(self, offset: int, line: int) -> tuple[Row | None, tuple[int, int]]:
        f = self._seek(offset)
        while True:
            raw = self._line(f, line + 1)
            if not raw:
                return None, (offset, line)
            offset += len(raw)
            line += 1
            text = raw.strip()
            if not text:
                continue
            where = f"{self.display}:{line}"
            try:
                value = json.loads(text.decode("utf-8-sig"))
            except UnicodeDecodeError as exc:
                raise RowError(where, f"not UTF-8 text: {exc.reason}", (offset, line)) from None
            except json.JSONDecodeError as exc:
                raise RowError(where, f"invalid JSON: {exc.msg}", (offset, line)) from None
            if not isinstance(value, dict):
                raise RowError(where, "a JSONL line must be one object", (offset, line))
            return value, (offset, line)

    def _csv_record(self, offset: int, line: int) -> tuple[list[str] | None, tuple[int, int]]:
        f = self._seek(offset)
        position = [offset, line]

        def lines() -> Iterator[str]:
            size = 0
            while True:
                raw = self._line(f, position[1] + 1)
                if not raw:
                    return
                size += len(raw)
                position[0] += len(raw)
                position[1] += 1
                after = (position[0], position[1])
                if size > MAX_ROW:
                    message = f"a record longer than {MAX_ROW:,} bytes"
                    raise RowError(f"{self.display}:{line + 1}", message, after)
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    where = f"{self.display}:{position[1]}"
                    raise RowError(where, f"not UTF-8 text: {exc.reason}", after) from None
                yield text

        reader = csv.reader(lines(), delimiter=self.delimiter, quotechar=self.quote, strict=True)
        try:
            record = next(reader, None)
        except csv.Error as exc:
            where = f"{self.display}:{line + 1}"
            raise RowError(where, f"malformed CSV: {exc}", (position[0], position[1])) from None
        return record, (position[0], position[1])

    def _csv_row(self, record: list[str], line: int, after: tuple[int, int]) -> Row:
        if len(record) != len(self.fields):
            message = f"{len(record)} fields where the header has {len(self.fields)}"
            raise RowError(f"{self.display}:{line}", message, after)
        return dict(zip(self.fields, record, strict=True))

    # -- the index (random access) ---------------------------------------------------------
    def index(self, truncate: bool = False) -> int:
        """Scan the file once, keeping where each record starts; the number of records.
        A malformed record keeps its place: the pass that picks it fails (`data-error`).
        A record whose end cannot be told raises, or with `truncate` ends the file there."""
        offsets, lines = array("q"), array("q")
        at = self.first
        while True:
            try:
                row, after = self.read(at)
            except RowError as exc:
                if exc.after is None:
                    if truncate:
                        break
                    raise
                row, after = {}, exc.after
            if row is None:
                break
            # Where the record starts: a blank line before it is skipped again on a read.
            offsets.append(at[0])
            lines.append(at[1])
            at = after
        self.offsets, self.lines = offsets, lines
        return len(offsets)

    def read_index(self, i: int) -> Row:
        """Record `i` of the index (`index()` first)."""
        row, _ = self.read((self.offsets[i], self.lines[i]))
        if row is None:  # the file changed under the run
            raise RowError(self.display, f"record {i + 1} is gone (the file changed?)")
        return row

    # -- validation ------------------------------------------------------------------------
    def peek(self) -> tuple[str, ...] | None:
        """Open, read the first record, close: its field names (None when a JSON source's
        first object is all there is to go by); RowError when the file is empty or bad."""
        try:
            self.open()
            row, _ = self.read(self.first)
        finally:
            self.close()
        if row is None:
            raise RowError(self.display, "the file has no rows")
        if self.format == "csv":
            return self.fields
        return None
