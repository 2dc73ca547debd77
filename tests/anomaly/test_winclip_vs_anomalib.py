"""WinCLIP / WinCLIP+ agree with anomalib's WinClipModel on shared weights and images (1e-6;
measured agreement 2e-7 zero-shot, 5e-7 few-shot).

anomalib builds its backbone by name through open_clip; the test hands it a copy of our tiny model
instead, and its module-level tokenizer is swapped for the tiny model's (context length 32).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from clipsuite.anomaly.methods.winclip import WinClip
from clipsuite.core.models import load_model

torch_model = pytest.importorskip("anomalib.models.image.winclip.torch_model")


class _SequenceFirst(nn.Module):
    """Feeds anomalib's sequence-first window tensor to the batch-first open_clip transformer correctly."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(1, 0, 2)).permute(1, 0, 2)


def _fixed_window_embeddings(self, feature_map, masks):  # type: ignore[no-untyped-def]
    original = self.clip.visual.transformer
    self.clip.visual.transformer = _SequenceFirst(original)
    try:
        return _ORIGINAL_WINDOWS(self, feature_map, masks)
    finally:
        self.clip.visual.transformer = original


_ORIGINAL_WINDOWS = torch_model.WinClipModel._get_window_embeddings


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return load_model("tiny", device="cpu")


def _anomalib_model(clip, monkeypatch, fix_windows: bool = True, **kwargs):
    monkeypatch.setattr(torch_model.open_clip, "create_model_and_transforms",
                        lambda *a, **k: (copy.deepcopy(clip.model), None, clip.preprocess))
    monkeypatch.setattr(torch_model, "tokenize", clip.tokenizer)
    if fix_windows:
        monkeypatch.setattr(torch_model.WinClipModel, "_get_window_embeddings", _fixed_window_embeddings)
    return torch_model.WinClipModel(**kwargs).eval()


def _images(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 64, 64, generator=generator)


def test_zero_shot_matches_anomalib(clip, monkeypatch):
    oracle = _anomalib_model(clip, monkeypatch, class_name="bottle")
    ours = WinClip(clip, class_name="bottle")
    images = _images(3, 1)
    expected = oracle(images)
    got = ours.predict(images)
    assert got.maps.shape == expected.anomaly_map.shape == (3, 64, 64)
    torch.testing.assert_close(got.scores, expected.pred_score, atol=1e-6, rtol=0)
    torch.testing.assert_close(got.maps, expected.anomaly_map, atol=1e-6, rtol=0)
    assert got.maps.std() > 0  # a real map, not a constant


@pytest.mark.parametrize("shots", [1, 2])
def test_few_shot_matches_anomalib(clip, monkeypatch, shots):
    references = _images(shots, 2)
    oracle = _anomalib_model(clip, monkeypatch, class_name="metal nut", reference_images=references)
    ours = WinClip(clip, class_name="metal_nut").fit(references)  # underscores become spaces
    assert ours.k_shot == shots
    images = torch.cat([_images(2, 3), references[:1]])  # a reference image scores ~0 few-shot
    expected = oracle(images)
    got = ours.predict(images)
    torch.testing.assert_close(got.scores, expected.pred_score, atol=1e-6, rtol=0)
    torch.testing.assert_close(got.maps, expected.anomaly_map, atol=1e-6, rtol=0)


def test_unpatched_anomalib_windows_attend_across_windows(clip, monkeypatch):
    """Documents why the oracle is patched: on open_clip 3.x (batch-first transformer) anomalib's
    permute makes every window embedding identical. If this starts failing, anomalib fixed it and the
    patch above can go."""
    oracle = _anomalib_model(clip, monkeypatch, fix_windows=False, class_name="bottle")
    with torch.no_grad():
        _, windows, _ = oracle.encode_image(_images(2, 4))
    assert all(float((w - w[:, :1]).abs().max()) == 0.0 for w in windows)
    _, ours, _ = WinClip(clip, class_name="bottle").encode(_images(2, 4))
    assert all(float((w - w[:, :1]).abs().max()) > 1e-3 for w in ours)
