"""`.ci/run`: the README's two Quickstart commands with `uv run ruff check .` and `uv run mypy` between
them, failing on either.

The script runs in a copy of the repo's skeleton (its own `.ci/run`, a README whose two commands write
marker files) with a fake `uv` first on PATH, so nothing is installed and no test suite is started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

README = """# x

## Quickstart

```
touch first.done
touch second.done
```
"""


def _run_ci(tmp_path: Path, ruff_exit: int, mypy_exit: int = 0) -> subprocess.CompletedProcess[str]:
    (tmp_path / ".ci").mkdir()
    shutil.copy2(REPO / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "README.md").write_text(README)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_uv = bin_dir / "uv"
    # records its arguments, and fails like ruff or mypy would when asked to
    fake_uv.write_text(f'#!/usr/bin/env bash\necho "$@" >> "{tmp_path}/uv.calls"\n'
                       f'[ "$2" = mypy ] && exit {mypy_exit}\nexit {ruff_exit}\n')
    fake_uv.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(tmp_path / ".ci" / "run")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)


def test_ruff_and_mypy_run_between_the_two_commands(tmp_path: Path) -> None:
    done = _run_ci(tmp_path, ruff_exit=0)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "uv.calls").read_text().splitlines() == ["run ruff check .", "run mypy"]
    assert (tmp_path / "first.done").exists() and (tmp_path / "second.done").exists()
    lines = [line for line in done.stdout.splitlines() if line.startswith("+ ")]
    assert lines == ["+ touch first.done", "+ uv run ruff check .", "+ uv run mypy", "+ touch second.done"]


@pytest.mark.parametrize("ruff_exit", [1, 2])
def test_ruff_failure_fails_ci_before_the_tests(tmp_path: Path, ruff_exit: int) -> None:
    done = _run_ci(tmp_path, ruff_exit=ruff_exit)
    assert done.returncode == ruff_exit
    assert (tmp_path / "first.done").exists()
    assert not (tmp_path / "second.done").exists()


def test_mypy_failure_fails_ci_before_the_tests(tmp_path: Path) -> None:
    done = _run_ci(tmp_path, ruff_exit=0, mypy_exit=1)
    assert done.returncode == 1
    assert (tmp_path / "uv.calls").read_text().splitlines() == ["run ruff check .", "run mypy"]
    assert not (tmp_path / "second.done").exists()
