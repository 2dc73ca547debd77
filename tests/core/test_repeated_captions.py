"""Captions that repeat within a batch (class-style captions): measured, said in one line, and the
``--shared-positives`` loss suggested (it counts identical captions as positives for each other)."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from clipsuite.core.contrastive import (
    ContrastiveConfig,
    repeated_caption_note,
    repeated_caption_share,
    train_contrastive,
)

torch.set_num_threads(1)


def _enumerated_share(captions: list[str], batch_size: int) -> float:
    """The same expectation by enumerating every set of batch-mates of every row."""
    n, total = len(captions), 0.0
    for row in range(n):
        others = [i for i in range(n) if i != row]
        mates = list(itertools.combinations(others, batch_size - 1))
        total += sum(any(captions[m] == captions[row] for m in group) for group in mates) / len(mates)
    return total / n


@pytest.mark.parametrize("captions, batch_size", [
    (list("aabcc"), 2), (list("aaabbcdd"), 3), (list("abcdef"), 4), (list("aaaaaa"), 2), (list("aabbbbcde"), 5)])
def test_share_of_repeated_captions_equals_enumeration(captions: list[str], batch_size: int) -> None:
    assert repeated_caption_share(captions, batch_size) == pytest.approx(_enumerated_share(captions, batch_size))


def test_share_edge_cases() -> None:
    assert repeated_caption_share(list("aabcc"), 2) == pytest.approx(0.2)  # a and c: 1 chance in 4 each
    assert repeated_caption_share(["one"] * 10, 4) == 1.0
    assert repeated_caption_share(list("abc"), 64) == 0.0
    assert repeated_caption_share(["x"], 8) == 0.0 and repeated_caption_share(list("aa"), 1) == 0.0


def test_the_note_names_the_share_and_the_flag() -> None:
    digits = [f"a handwritten digit {d}" for d in range(10)] * 20  # one caption per class
    note = repeated_caption_note(digits, 32, ContrastiveConfig())
    assert note is not None and "\n" not in note
    # 1 - C(180, 31) / C(199, 31) = 0.97: a row's 31 batch-mates miss all 19 of its twins 3% of the time
    assert note.startswith("97% of the captions in a batch of 32 repeat within it (10 distinct captions for 200 "
                           "pairs): clip loss pushes identical captions apart")
    assert note.endswith("--shared-positives counts them as positives for each other")
    assert "--loss clip --shared-positives" in repeated_caption_note(digits, 32, ContrastiveConfig(loss="siglip"))
    assert repeated_caption_note(digits, 32, ContrastiveConfig(shared_positives=True)) is None
    unique = [f"caption {i}" for i in range(200)]
    assert repeated_caption_note(unique, 32, ContrastiveConfig()) is None


def test_training_on_class_captions_says_so_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    colours = ["red", "green", "blue"]
    pairs = [(Image.new("RGB", (32, 32), colour), f"a {colour} square") for colour in colours * 4]
    with caplog.at_level(logging.WARNING, logger="clipsuite.core.contrastive"):
        train_contrastive(pairs, tmp_path / "run", model="tiny", augment=False, max_steps=1, batch_size=6,
                          progress=False)
    notes = [r.getMessage() for r in caplog.records if r.name == "clipsuite.core.contrastive"]
    assert len(notes) == 1 and "3 distinct captions for 12 pairs" in notes[0] and "--shared-positives" in notes[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clipsuite.core.contrastive"):
        train_contrastive(pairs, tmp_path / "shared", model="tiny", augment=False, max_steps=1, batch_size=6,
                          progress=False, contrastive=ContrastiveConfig(shared_positives=True))
    assert not [r for r in caplog.records if r.name == "clipsuite.core.contrastive"]
