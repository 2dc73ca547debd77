"""Fixtures shared by every test folder.

``pretrained_backbone``: the offline pretrained ``tiny`` CLIP (``clipsuite.core.pretrain``), trained
once on the synthetic caption corpus and cached on disk under ``$CLIPSUITE_TEST_CACHE`` (default
``<repo>/.cache/test-backbones``), keyed by its config and corpus code. A file lock makes parallel
workers (pytest-xdist) wait for one build instead of each paying for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from filelock import FileLock

from clipsuite.core.pretrain import PretrainConfig, ensure_pretrained

REPO = Path(__file__).resolve().parents[1]
TEST_CACHE = Path(os.environ.get("CLIPSUITE_TEST_CACHE", REPO / ".cache" / "test-backbones"))


@pytest.fixture(scope="session")
def pretrained_backbone() -> Path:
    """Folder of the pretrained backbone (``load_model(str(path))`` reads it)."""
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(TEST_CACHE / "build.lock")):
        return ensure_pretrained(PretrainConfig(), TEST_CACHE)
