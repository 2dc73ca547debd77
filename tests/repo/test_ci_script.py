"""`.ci/run`: the README's two Quickstart commands with `uv run ruff check .` between them, failing on ruff.

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


def _run_ci(tmp_path: Path, ruff_exit: int) -> subprocess.CompletedProcess[str]:
    (tmp_path / ".ci").mkdir()
    shutil.copy2(REPO / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "README.md").write_text(README)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_uv = bin_dir / "uv"
    # records its arguments, and fails like ruff would when asked to
    fake_uv.write_text(f'#!/usr/bin/env bash\necho "$@" >> "{tmp_path}/uv.calls"\nexit {ruff_exit}\n')
    fake_uv.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(tmp_path / ".ci" / "run")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)


def test_ruff_runs_between_the_two_commands(tmp_path: Path) -> None:
    done = _run_ci(tmp_path, ruff_exit=0)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "uv.calls").read_text().splitlines() == ["run ruff check ."]
    assert (tmp_path / "first.done").exists() and (tmp_path / "second.done").exists()
    lines = [line for line in done.stdout.splitlines() if line.startswith("+ ")]
    assert lines == ["+ touch first.done", "+ uv run ruff check .", "+ touch second.done"]


@pytest.mark.parametrize("ruff_exit", [1, 2])
def test_ruff_failure_fails_ci_before_the_tests(tmp_path: Path, ruff_exit: int) -> None:
    done = _run_ci(tmp_path, ruff_exit=ruff_exit)
    assert done.returncode == ruff_exit
    assert (tmp_path / "first.done").exists()
    assert not (tmp_path / "second.done").exists()
