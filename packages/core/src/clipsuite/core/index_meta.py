"""The index's metadata as one columnar table: an Arrow IPC file, memory-mapped, rows taken by id.

At 10M rows a list of Python dicts is tens of GB; an uncompressed Arrow file is read through the page
cache and only the hits' rows ever become Python objects (``take``). Columns keep the types the
embedding shards' JSONL rows had (bool, int, float, string); a column whose rows disagree (an int in
one, a string in another) or holds lists/objects is stored as text (JSON for the nested ones), so a
metadata file never fails to write. Filters (``--where``) are SQL expressions evaluated by DuckDB on
the memory-mapped table: no query parser of our own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from clipsuite.core.errors import InputError, first_line

METADATA_FILE = "metadata.arrow"
BLOCK_ROWS = 65_536


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -2**63 <= value < 2**63 else "str"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


_ARROW = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string(), "json": pa.string(),
          "null": pa.string()}


def infer_schema(rows: Iterable[dict[str, Any]]) -> pa.Schema:
    """One pass over the rows: each column's single type, ints widened to floats, any other mix to text."""
    kinds: dict[str, set[str]] = {}
    for row in rows:
        for key, value in row.items():
            kinds.setdefault(key, set()).add(_kind(value))
    fields = []
    for name, seen in kinds.items():
        seen = seen - {"null"}
        if seen == {"int", "float"}:
            seen = {"float"}
        kind = seen.pop() if len(seen) == 1 else ("null" if not seen else "json")
        fields.append(pa.field(name, _ARROW[kind], metadata={"kind": kind}))
    return pa.schema(fields)


def _column_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "json":
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if kind == "float":
        return float(value)
    return value


def write_metadata(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]], schema: pa.Schema) -> int:
    """Stream ``rows`` into an uncompressed Arrow IPC file (``BLOCK_ROWS`` per record batch); returns the count."""
    kinds = [(f.name, (f.metadata or {}).get(b"kind", b"str").decode()) for f in schema]
    count = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        block: list[dict[str, Any]] = []

        def flush() -> None:
            columns = [pa.array([_column_value(r.get(name), kind) for r in block], type=schema.field(name).type)
                       for name, kind in kinds]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
            block.clear()

        for row in rows:
            block.append(row)
            count += 1
            if len(block) >= BLOCK_ROWS:
                flush()
        if block or count == 0:
            flush()
    return count


class MetadataTable:
    """The memory-mapped table; ``rows(ids)`` gives the dicts of a few rows, ``where(sql)`` the matching ids."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.table = pa.ipc.open_file(pa.memory_map(str(self.path), "r")).read_all()  # zero-copy
        except (pa.ArrowInvalid, OSError) as error:
            raise InputError(f"{self.path}: not a readable Arrow metadata file ({str(error)[:120]})") from None
        self._json = {f.name for f in self.table.schema if (f.metadata or {}).get(b"kind") == b"json"}

    def __len__(self) -> int:
        return int(self.table.num_rows)

    @property
    def columns(self) -> list[str]:
        return list(self.table.column_names)

    def rows(self, ids: np.ndarray) -> list[dict[str, Any]]:
        """Rows ``ids`` as dicts (nested values decoded back from JSON); nulls are left out like absent keys."""
        picked = self.table.take(pa.array(np.asarray(ids, dtype=np.int64))).to_pylist()
        return [{k: (_decoded(v) if k in self._json else v) for k, v in row.items() if v is not None}
                for row in picked]

    def where(self, predicate: str) -> np.ndarray:
        """Sorted row ids whose metadata satisfies the SQL expression ``predicate`` (DuckDB dialect)."""
        import duckdb

        table = self.table.append_column("__row__", pa.array(np.arange(len(self), dtype=np.int64)))
        connection = duckdb.connect()
        try:
            relation = connection.from_arrow(table)
            found = relation.filter(predicate).project("__row__").fetchnumpy()["__row__"]
        except duckdb.Error as error:
            first = first_line(error)
            raise InputError(f"--where {predicate!r}: {first[:200]} (columns: {', '.join(self.columns)})") from None
        finally:
            connection.close()
        return np.sort(np.asarray(found, dtype=np.int64))


def _decoded(value: Any) -> Any:
    """A text column's value back as it was: lists and objects were stored as JSON, strings as themselves."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
