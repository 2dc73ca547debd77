"""Shared fixtures for the generative tests: one synthetic VITON-HD folder per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipsuite.generative import synthetic


@pytest.fixture(scope="session")
def vitonhd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.make_vitonhd(tmp_path_factory.mktemp("vitonhd"), n_train=6, n_test=3, seed=0)
