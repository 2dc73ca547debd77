from __future__ import annotations

from pathlib import Path

import pytest

from clipsuite.brain import synthetic


@pytest.fixture(scope="session")
def subject(tmp_path_factory) -> Path:
    """The synthetic subject's dataset config (3 sessions, 240 train + 40 test stimuli x 3 repeats)."""
    return synthetic.make_subject(tmp_path_factory.mktemp("subject"))
