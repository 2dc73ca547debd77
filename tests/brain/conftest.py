from __future__ import annotations

from pathlib import Path

import pytest

from clipsuite.brain import synthetic


@pytest.fixture(scope="session")
def subject(tmp_path_factory) -> Path:
    """The synthetic subject's dataset config (3 sessions, 240 train + 40 test stimuli x 3 repeats)."""
    return synthetic.make_subject(tmp_path_factory.mktemp("subject"))


@pytest.fixture(scope="session")
def nsd_root(tmp_path_factory) -> Path:
    """A mini NSD download (subjects 1, 2 (.hdf5 betas), 5 with 4, 3, 2 sessions of 60 trials; 48 px brick)."""
    return synthetic.make_nsd(tmp_path_factory.mktemp("nsd"))
