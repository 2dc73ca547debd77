"""Patch memory and the shared post-processing on the tiny backbone."""

from __future__ import annotations

import pytest
import torch

from clipsuite.anomaly.methods.patch_memory import PatchMemory, greedy_coreset
from clipsuite.anomaly.methods.winclip import WinClip
from clipsuite.core.errors import InputError


def test_greedy_coreset_covers_every_cluster():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    points = torch.cat([c + 0.1 * torch.randn(50, 2, generator=generator) for c in centres])
    chosen = greedy_coreset(points, 4)
    assert len(set(chosen.tolist())) == 4
    assert sorted((chosen // 50).tolist()) == [0, 1, 2, 3]  # one per cluster
    assert torch.equal(greedy_coreset(points, 500), torch.arange(200))


def test_patch_memory_scores_references_zero_and_defects_high(tiny):
    generator = torch.Generator().manual_seed(0)
    normal = torch.randn(2, 3, 64, 64, generator=generator) * 0.1
    memory = PatchMemory(tiny, smoothing_sigma=0).fit(normal)
    same = memory.predict(normal)
    assert same.scores.abs().max() < 5e-3  # each reference patch is in the memory (float32 cdist noise)
    defect = normal[:1].clone()
    defect[:, :, 16:32, 16:32] = 2.0
    result = memory.predict(defect)
    assert result.maps.shape == (1, 64, 64)
    assert result.maps[0, 16:32, 16:32].mean() > 2 * result.maps[0, 48:, 48:].mean()
    small = PatchMemory(tiny, coreset_ratio=0.25).fit(normal)
    assert small.memory.shape[0] == 2 * 64 // 4
    with pytest.raises(InputError, match="needs at least one normal reference"):
        PatchMemory(tiny).fit(torch.empty(0, 3, 64, 64))
    with pytest.raises(InputError, match="call fit"):
        PatchMemory(tiny).predict(normal)


def test_winclip_batches_are_independent_and_smoothing_is_optional(tiny):
    pixels = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    method = WinClip(tiny, class_name="bottle", window_chunk=7)  # chunks that split the window batch
    together = method.predict(pixels)
    alone = method.predict(pixels[1:2])
    torch.testing.assert_close(together.scores[1:2], alone.scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(together.maps[1:2], alone.maps, atol=1e-5, rtol=0)
    smoothed = WinClip(tiny, class_name="bottle", smoothing_sigma=2.0).predict(pixels)
    assert smoothed.maps.std() < together.maps.std()
    torch.testing.assert_close(smoothed.scores, together.scores)
