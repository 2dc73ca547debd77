"""Fixtures shared by every test folder.

``pretrained_backbone``: the offline pretrained ``tiny`` CLIP (``clipsuite.core.pretrain``), trained
once on the synthetic caption corpus and cached on disk under ``$CLIPSUITE_TEST_CACHE`` (default
``<repo>/.cache/test-backbones``), keyed by its config and corpus code. A file lock makes parallel
workers (pytest-xdist) wait for one build instead of each paying for it.

``tiny``, ``tiny_transformers``, ``tiny_multilingual``: the built-in random models, one per test module
(a test that changes its model cannot leak into another file). Their init is seeded inside
``load_model``, so the fixtures leave the global RNG alone.
"""

from __future__ import annotations

import os
from pathlib import Path

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
