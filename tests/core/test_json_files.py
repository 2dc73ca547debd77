"""``core.json_files.read_json``: one line per problem, and importable without torch (CLIs read inputs first)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clipsuite.core.errors import InputError
from clipsuite.core.json_files import read_json


def test_reads_and_names_each_problem(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}', encoding="utf-8")
    assert read_json(good) == {"a": [1, 2]}
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,\n "b": }', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.json: malformed JSON at line 2 column 7"):
        read_json(bad)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(InputError, match="latin.json: not a UTF-8 text file"):
        read_json(latin)
    with pytest.raises(InputError, match="missing.json: file not found"):
        read_json(tmp_path / "missing.json")
    with pytest.raises(InputError, match=f"{tmp_path}: is a folder, not a dataset config"):
        read_json(tmp_path, "dataset config")


def test_imports_without_torch() -> None:
    code = "import sys, clipsuite.core.json_files; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_first_line_of_an_error_is_one_short_line() -> None:
    from clipsuite.core.errors import first_line

    assert first_line(ValueError("bad header\n  at byte 12\n")) == "bad header"
    assert first_line(ValueError("")) == "ValueError" and first_line(OSError(), empty="unreadable") == "unreadable"
    assert first_line(RuntimeError("x" * 300), 120) == "x" * 120
