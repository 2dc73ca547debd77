"""`tiny-hf`'s built-in init: its BERT text tower tells prompts apart about as much as `tiny`'s tower.

At BERT's default init (std 0.02) every prompt reached nearly the same [CLS] feature (cosine 0.99997
between classes), so prompt learners had nothing to move; the tiny BERT's config draws its weights at
std 0.2 instead.
"""

from __future__ import annotations

import torch

from clipsuite.core.models import load_model

PROMPTS = [f"a photo of a {name}." for name in ("cat", "dog", "car", "tumor", "lung", "brain", "kidney", "bone")]


def _cosines(spec: str) -> torch.Tensor:
    """Cosine similarity of every pair of distinct prompts' text features."""
    features = load_model(spec, device="cpu").encode_texts(PROMPTS)
    similarity = features @ features.T
    return similarity[~torch.eye(len(PROMPTS), dtype=torch.bool)]


def test_tiny_hf_prompts_spread_like_tiny() -> None:
    hf, tiny = _cosines("tiny-hf"), _cosines("tiny")
    # measured: tiny-hf mean 0.878 (min 0.694), tiny mean 0.917 (min 0.865); at std 0.02: 0.99997
    assert hf.mean() < 0.95 and hf.min() < 0.8, hf
    assert abs(hf.mean().item() - tiny.mean().item()) < 0.1, (hf.mean(), tiny.mean())


def test_tiny_hf_init_leaves_the_callers_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_model("tiny-hf", device="cpu")
    assert torch.equal(torch.rand(3), expected)
