"""Fixtures shared by every test folder.

``pretrained_backbone``: the offline pretrained ``tiny`` CLIP (``clipsuite.core.pretrain``), trained
once on the synthetic caption corpus and cached on disk under ``$CLIPSUITE_TEST_CACHE`` (default
``<repo>/.cache/test-backbones``), keyed by its config and corpus code. A file lock makes parallel
workers (pytest-xdist) wait for one build instead of each paying for it.

``before_torch``: runs a CLI in a fresh process and tells its exit code, whether torch / open_clip were
imported, and its stderr lines: how a test shows an error answers before the heavy imports.

``tiny``, ``tiny_transformers``, ``tiny_multilingual``: the built-in random models, one per test module
(a test that changes its model cannot leak into another file). Their init is seeded inside
``load_model``, so the fixtures leave the global RNG alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from clipsuite.core.models import ClipModel, load_model
from clipsuite.core.pretrain import PretrainConfig, ensure_pretrained

REPO = Path(__file__).resolve().parents[1]
TEST_CACHE = Path(os.environ.get("CLIPSUITE_TEST_CACHE", REPO / ".cache" / "test-backbones"))


@pytest.fixture(scope="session")
def pretrained_backbone() -> Path:
    """Folder of the pretrained backbone (``load_model(str(path))`` reads it)."""
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(TEST_CACHE / "build.lock")):
        return ensure_pretrained(PretrainConfig(), TEST_CACHE)


@pytest.fixture(scope="module")
def tiny() -> ClipModel:
    return load_model("tiny", device="cpu")


@pytest.fixture(scope="module")
def tiny_transformers() -> ClipModel:
    return load_model("tiny-transformers", device="cpu")


@pytest.fixture(scope="module")
def tiny_multilingual() -> ClipModel:
    return load_model("tiny-multilingual", device="cpu", precision="fp32")


BEFORE_TORCH_PROBE = """
import importlib, json, sys
module, argv = sys.argv[1], sys.argv[2:]
app = importlib.import_module(module).app
try:
    app(argv, standalone_mode=True)
    code = 0
except SystemExit as stop:
    code = stop.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules, "open_clip": "open_clip" in sys.modules}))
"""


@pytest.fixture(scope="session")
def before_torch() -> Callable[..., tuple[dict[str, Any], list[str]]]:
    """``run(module, argv, env=...)`` -> (``{"code", "torch", "open_clip"}``, the non-blank stderr lines),
    offline, in a fresh process with a wide terminal (a message is never wrapped); ``env`` adds variables."""
    def run(module: str, argv: Sequence[str], timeout: int = 300,
            env: dict[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
        done = subprocess.run([sys.executable, "-c", BEFORE_TORCH_PROBE, module, *argv], capture_output=True,
                              text=True, timeout=timeout,
                              env={"COLUMNS": "300", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", **(env or {})})
        report = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {"stderr": done.stderr}
        return report, [line for line in done.stderr.splitlines() if line.strip()]

    return run
