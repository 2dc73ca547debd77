"""Shared fixtures for the generative tests: one synthetic VITON-HD folder per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipsuite.generative import synthetic

# The test machine's cores are shared by several runs: two OpenMP threads spin-waiting on a busy
# machine make these small convolutions ~50x slower than one thread.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def vitonhd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.make_vitonhd(tmp_path_factory.mktemp("vitonhd"), n_train=6, n_test=3, seed=0)
