"""One reader (and writer) for the tables the suite reads: CSV, TSV and JSONL.

The delimiter rule, the same for every table: ``.jsonl`` (or ``.ndjson``) holds one JSON object per
line; ``.tsv`` is tab-separated; any other name (``.csv``, ``.txt`` ...) is tab-separated when its
header line holds a tab (open_clip writes tab-separated ``.csv`` files) and comma-separated
otherwise. A caller may still name the delimiter outright. Writing follows the same rule by name.

Delimited files have a header row: column names are stripped, a UTF-8 byte-order mark is dropped,
a repeated name is an error and a column with an empty name (a pandas index) is ignored. A row with
more fields than the header is an error (a value holding the delimiter lost its quotes, and values
would silently shift); a shorter row reads its missing trailing fields as empty.

Every problem is one ``InputError`` naming the file, the line and what is wrong: a missing or empty
file, a header with no rows, a missing column (JSONL: key), malformed JSON, an empty required value.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipsuite.core.errors import InputError
from clipsuite.core.staging import atomic_write_text

JSONL_SUFFIXES = (".jsonl", ".ndjson")


def is_jsonl(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in JSONL_SUFFIXES


def delimiter_for(path: str | os.PathLike[str], header: str = "") -> str:
    """The delimiter rule: tab for ``.tsv`` or a header line holding a tab, else comma."""
    return "\t" if Path(path).suffix.lower() == ".tsv" or "\t" in header else ","


@dataclass(frozen=True)
class Record:
    """One row: its values by column and the line it ends on (for messages)."""

    path: Path
    line: int
    values: Mapping[str, Any]

    @property
    def where(self) -> str:
        return f"{self.path} line {self.line}"

    def error(self, problem: str) -> InputError:
        """``InputError('<file> line <n>: <problem>')``, for the caller to raise."""
        return InputError(f"{self.where}: {problem}")

    def get(self, column: str, default: Any = None) -> Any:
        value = self.values.get(column)
        return default if value is None else value

    def text(self, column: str) -> str:
        """The stripped value of ``column``; absent, empty or not text is an error naming the line."""
        value = self.values.get(column)
        if value is not None and not isinstance(value, str):
            raise self.error(f"'{column}' is not text ({type(value).__name__} {str(value)[:40]})")
        if value is None or not value.strip():
            raise self.error(f"empty '{column}'")
        return value.strip()

    def optional_text(self, column: str) -> str | None:
        """The stripped value, or None where it is absent or empty."""
        value = self.values.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value.strip() if isinstance(value, str) else str(value)


@dataclass
class Table:
    path: Path
    columns: list[str]  # header order; JSONL: keys in the order first seen
    records: list[Record]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[:error.start].count(b"\n") + 1
        raise InputError(f"{path} line {line}: not UTF-8 text") from None


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line, streamed; a bad line raises ``InputError``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    with open(path, "rb") as handle:  # bytes, decoded line by line: a decoding error names its own line
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{path} line {number}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path} line {number}: malformed JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path} line {number}: not a JSON object")
            yield number, row


def _read_jsonl(path: Path, required: Sequence[str]) -> Table:
    columns: dict[str, None] = {}
    records = []
    for number, row in iter_jsonl(path):
        for column in required:
            if column not in row:
                raise InputError(f"{path} line {number}: no key '{column}' (keys: {', '.join(row) or 'none'})")
        columns.update(dict.fromkeys(row))
        records.append(Record(path, number, row))
    return Table(path, list(columns), records)


def _header(path: Path, names: list[str], required: Sequence[str]) -> list[str]:
    columns = [name.strip() for name in names]
    named = [c for c in columns if c]
    repeated = next((c for i, c in enumerate(named) if c in named[:i]), None)
    if repeated is not None:
        raise InputError(f"{path} line 1: column '{repeated}' appears twice in the header")
    for column in required:
        if column not in named:
            raise InputError(f"{path} line 1: no column '{column}' (columns: {', '.join(named) or 'none'})")
    return columns


def _read_delimited(path: Path, required: Sequence[str], delimiter: str | None) -> Table:
    text = _read_text(path)
    if not text.strip():
        raise InputError(f"{path}: empty file")
    if delimiter is None:
        delimiter = delimiter_for(path, text.lstrip("\r\n").split("\n", 1)[0])
    # strict: an unclosed quote is an error, not a value that swallows the rest of the file
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    columns: list[str] | None = None
    records = []
    try:
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            if columns is None:
                columns = _header(path, fields, required)
                continue
            if len(fields) > len(columns):
                raise InputError(f"{path} line {reader.line_num}: {len(fields)} fields but the header has "
                                 f"{len(columns)} (quote values that hold the delimiter '{delimiter}')")
            values = {c: v for c, v in zip(columns, fields) if c}
            records.append(Record(path, reader.line_num, values))
    except csv.Error as error:
        raise InputError(f"{path} line {reader.line_num}: malformed table ({error})") from None
    return Table(path, [c for c in columns or [] if c], records)


def read_table(path: str | os.PathLike[str], required: Sequence[str] = (), delimiter: str | None = None,
               allow_empty: bool = False) -> Table:
    """Read a CSV / TSV / JSONL file (see the module notes for the rule) into records.

    ``required``: columns (JSONL: keys of every object) that must be there. A table without rows is
    an error unless ``allow_empty``. Values of delimited files are strings as written (not stripped);
    JSONL values keep their JSON types.
    """
    path = Path(path)
    table = _read_jsonl(path, required) if is_jsonl(path) else _read_delimited(path, required, delimiter)
    if not table.records and not allow_empty:
        raise InputError(f"{path}: no records" if is_jsonl(path) else f"{path}: a header but no rows")
    return table


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                 delimiter: str = ",") -> str:
    """Rows as delimited text with a header; ``columns`` default to every key in first-seen order.
    Lists and dicts are written as JSON; a missing value is an empty field."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


def format_jsonl(rows: Sequence[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)


def write_table(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]],
                columns: Sequence[str] | None = None) -> Path:
    """Write rows as JSONL, TSV or CSV (by the file name, as ``read_table`` reads them), staged."""
    path = Path(path)
    if is_jsonl(path):
        atomic_write_text(path, format_jsonl(rows))
    else:
        atomic_write_text(path, format_table(rows, columns, delimiter_for(path)))
    return path
