"""Trial and stimulus tables (CSV or TSV): rows as dicts with their line numbers, columns checked.

Interim: replaced by ``clipsuite.core.tabular`` once the core's one tabular reader lands.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from clipsuite.core.errors import InputError


def read_table(path: Path, required: Sequence[str] = ()) -> list[tuple[int, dict[str, str]]]:
    """``[(line_number, row), ...]``; the delimiter is a tab for .tsv files or when the header has one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = handle.readline()
            delimiter = "\t" if path.suffix.lower() == ".tsv" or "\t" in header else ","
            handle.seek(0)
            reader = csv.DictReader(handle, delimiter=delimiter)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in required if c not in columns]
            if missing:
                raise InputError(f"{path}: missing column(s) {', '.join(missing)} "
                                 f"(has: {', '.join(columns) or 'none'})")
            rows = []
            for row in reader:
                if None in row:
                    raise InputError(f"{path}: line {reader.line_num} has more cells than the header")
                clean = {k.strip(): (v or "").strip() for k, v in row.items()}
                empty = [c for c in required if not clean.get(c)]
                if empty:
                    raise InputError(f"{path}: line {reader.line_num}: empty '{empty[0]}'")
                rows.append((reader.line_num, clean))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text table") from None
    except csv.Error as error:
        raise InputError(f"{path}: malformed table ({error})") from None
    return rows
