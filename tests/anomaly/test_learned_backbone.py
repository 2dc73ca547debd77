"""Anomaly learned prompts/adapters record their backbone (spec + weights fingerprint) and refuse another."""

from __future__ import annotations

import pytest
import torch

from clipsuite.anomaly.methods.learned import build_learned, load_learned, save_learned
from clipsuite.core.errors import InputError
from clipsuite.core.models import load_model


def test_learned_weights_refuse_a_backbone_with_other_weights(tiny, tmp_path):
    path = save_learned(build_learned(tiny, "anomalyclip"), tmp_path / "ac.safetensors")
    assert load_learned(load_model("tiny", device="cpu"), "anomalyclip", path) is not None
    other = load_model("tiny", device="cpu")
    with torch.no_grad():
        for parameter in other.model.parameters():
            parameter.mul_(1.01)
    other.name = "my-tiny"
    with pytest.raises(InputError, match=rf"trained on model 'tiny' \(weights {tiny.weights_hash}\), not on "
                                         rf"'my-tiny' \(weights {other.weights_hash}\)"):
        load_learned(other, "anomalyclip", path)
