"""Shared synthetic data and models for the medical tests (built once per session, small)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipsuite.medical import synthetic


@pytest.fixture(scope="session")
def vqa_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vqa_rad")
    synthetic.write_vqa_rad(root, n_images=36, seed=0)
    return root


@pytest.fixture(scope="session")
def slices_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.write_slice_dataset(tmp_path_factory.mktemp("slices"), n_per_class=12, seed=0)


@pytest.fixture(scope="session")
def tiny():  # type: ignore[no-untyped-def]
    from clipsuite.core.models import load_model

    torch.manual_seed(0)
    return load_model("tiny", device="cpu")


@pytest.fixture(scope="session")
def responsive_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny-hf`` saved as a folder, with its random text tower re-drawn at a larger scale.

    A BERT initialised with std 0.02 maps every prompt to nearly the same [CLS] feature (cosine 0.9999
    between classes), so no prompt learner can move it; a trained tower responds to its input. Linear
    weights at std 0.2 and word embeddings at std 1 stand in for that, and the logit scale is set to
    100 as in trained CLIP models. Image tower untouched."""
    import math

    from clipsuite.core.models import load_model

    torch.manual_seed(0)
    clip = load_model("tiny-hf", device="cpu")
    with torch.no_grad():
        for module in clip.model.text.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, 0.2)
        clip.model.text.transformer.embeddings.word_embeddings.weight.normal_(0.0, 1.0)
        clip.model.logit_scale.fill_(math.log(100.0))
    return clip.save(tmp_path_factory.mktemp("responsive_hf") / "model")
