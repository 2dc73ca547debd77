"""Read a JSON file with one clear error line; torch-free, so a CLI can read its inputs before heavy imports."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clipsuite.core.errors import InputError


def read_json(path: str | os.PathLike[str], what: str = "JSON file") -> Any:
    """The parsed contents of ``path``; ``InputError`` naming the file and the problem (missing, a folder,
    malformed at line/column, not UTF-8). ``what`` names the expected file in the folder message."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: is a folder, not a {what}" if path.is_dir() else f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: malformed JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
