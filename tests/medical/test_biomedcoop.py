"""BiomedCoOp: outlier pruning, the two extra losses, and few-shot / base-to-novel runs that beat
zero-shot on held-out slices with the tiny BERT-tower model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from clipsuite.core.adapt.registry import MethodOptions
from clipsuite.core.adapt.results import Row, summary_text
from clipsuite.core.adapt.runner import run
from clipsuite.core.errors import InputError
from clipsuite.core.models import load_model
from clipsuite.core.prompts import load_descriptions
from clipsuite.medical.data import load_dassl_split
from clipsuite.medical.methods.biomedcoop import BiomedCoOpConfig, biomedcoop_losses, prune_prompts

FAST = MethodOptions(epochs=40, lr=0.05, optimizer="adam", batch_size=4)


def compare(clip: Any, split: Any, methods: Sequence[str], shots: int, seeds: Sequence[int],
            options: MethodOptions, descriptions: Mapping[str, Sequence[str]] | None,
            protocol: str = "few-shot") -> list[Row]:
    """The core's one comparison runner with the medical data's descriptions (no augmented views)."""
    return run(clip, split, methods, shots, seeds, replace(options, descriptions=descriptions), views=0,
               protocol=protocol)


def test_mad_pruning_drops_the_outlier_prompt() -> None:
    scores = torch.tensor([10.0, 10.2, 9.9, 10.1, 10.05, 30.0])
    keep = prune_prompts(scores, tau=1.5)
    assert keep.tolist() == [True, True, True, True, True, False]
    assert prune_prompts(torch.ones(5), 1.5).all()  # no spread: keep all, no division by zero


def test_losses_match_their_definitions() -> None:
    torch.manual_seed(0)
    llm = torch.nn.functional.normalize(torch.randn(3, 5, 8), dim=-1)
    image = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    logits = 50 * image @ text.T
    out = biomedcoop_losses(logits, text, image, llm, 50.0, BiomedCoOpConfig(tau=100.0))
    mean = torch.nn.functional.normalize(llm.mean(1), dim=-1)
    assert out["sccm"] == pytest.approx(((text - mean) ** 2).mean().item(), rel=1e-5)
    teacher = (50 * image @ mean.T).log_softmax(1)  # tau 100 keeps every prompt
    kl = (teacher.exp() * (teacher - logits.log_softmax(1))).sum() / logits.numel()
    assert out["kdsp"] == pytest.approx(kl.item(), rel=1e-4)
    assert out["kept_prompts"] == 5


def test_few_shot_and_base_to_novel_beat_zero_shot(slices_split: Path) -> None:
    split = load_dassl_split(slices_split)
    descriptions = load_descriptions(slices_split.parent / "descriptions.json", split.class_names)
    clip = load_model("tiny-hf", device="cpu")
    rows = compare(clip, split, ["zeroshot", "biomedcoop"], shots=4, seeds=[1], options=FAST,
                   descriptions=descriptions)
    acc = {r.method: r.accuracy for r in rows}
    assert acc["biomedcoop"] >= acc["zeroshot"] + 25, acc
    assert acc["biomedcoop"] > 50.0, acc  # 4 classes: chance is 25%
    b2n = compare(clip, split, ["zeroshot", "biomedcoop"], shots=4, seeds=[1], protocol="base-to-novel",
                  options=FAST, descriptions=descriptions)
    base = {r.method: r for r in b2n}
    assert base["biomedcoop"].accuracy > base["zeroshot"].accuracy, b2n
    assert base["biomedcoop"].novel is not None and base["biomedcoop"].hm is not None
    table = summary_text(b2n)
    assert table.splitlines()[0] == "method | base | novel | HM" and "biomedcoop" in table


def test_biomedcoop_needs_sentences_for_every_class(slices_split: Path) -> None:
    split = load_dassl_split(slices_split)
    clip = load_model("tiny-hf", device="cpu")
    with pytest.raises(InputError, match="LLM sentences"):
        compare(clip, split, ["biomedcoop"], shots=1, seeds=[1], options=FAST, descriptions=None)
    with pytest.raises(InputError, match="no LLM sentences for class"):
        compare(clip, split, ["biomedcoop"], shots=1, seeds=[1], options=FAST, descriptions={"brain": ["a"]})
