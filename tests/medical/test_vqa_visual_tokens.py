"""The VQA visual tokens equal what open_clip's own image tower gives (pooled feature + last-block
patch tokens through ln_post and the projection); fine-tuning reaches the image tower's weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clipsuite.core.models import load_model
from clipsuite.medical.methods.vqa import ClipVisualTokens


@torch.no_grad()
def test_visual_tokens_equal_open_clip_intermediates() -> None:
    clip = load_model("tiny", device="cpu")
    visual = clip.model.visual
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    out = visual.forward_intermediates(pixels, indices=[3], output_fmt="NLC")
    patches = visual.ln_post(out["image_intermediates"][0]) @ visual.proj
    expected = F.normalize(torch.cat([out["image_features"].unsqueeze(1), patches], dim=1), dim=-1)
    tokens = ClipVisualTokens(clip)(pixels)
    assert tokens.shape == (2, 65, 64) and torch.equal(tokens, expected)
    pooled = ClipVisualTokens(clip, pool_grid=2)(pixels)
    grid = patches.transpose(1, 2).reshape(2, 64, 8, 8)
    regions = F.adaptive_avg_pool2d(grid, 2).flatten(2).transpose(1, 2)
    torch.testing.assert_close(pooled[:, 1:], F.normalize(regions, dim=-1))


def test_visual_tokens_register_the_image_tower_for_fine_tuning() -> None:
    clip = load_model("tiny", device="cpu")
    tokens = ClipVisualTokens(clip)
    assert tokens.visual is clip.image_encoder
    names = set(dict(tokens.named_parameters()))
    assert "visual.conv1.weight" in names and not any("token_embedding" in n for n in names)
    tokens(torch.randn(1, 3, 64, 64)).sum().backward()
    assert clip.image_encoder.conv1.weight.grad is not None
