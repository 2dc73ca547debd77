"""The towers against open_clip itself: steps equal the model's encoders, and each step does what
open_clip (or timm) does. These tests may use open_clip internals: that is what they check."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from open_clip.model import resize_pos_embed

from clipsuite.core.errors import ModelError
from clipsuite.core.models import load_model
from clipsuite.core.towers import capture, deep_prompt_hooks, replace_span, text_tower, vision_tower
from clipsuite.core.towers.open_clip_text import OpenClipHFTextTower, OpenClipTextTower
from clipsuite.core.towers.positions import resample_grid

TEXTS = ["a photo of a red circle.", "blue square", "a yellow star at the top of the picture"]


@pytest.fixture(scope="module", params=["tiny", "tiny-hf"])
def clip(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return load_model(request.param, device="cpu")


def _pixels(n: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_vision_steps_equal_encode_image(clip) -> None:  # type: ignore[no-untyped-def]
    tower = vision_tower(clip)
    pixels = _pixels()
    assert torch.equal(tower.forward(pixels), clip.model.encode_image(pixels))
    assert (tower.width, tower.depth, tower.output_dim, tower.grid_size) == (128, 4, 64, (8, 8))


@torch.no_grad()
def test_text_tower_equals_encode_text(clip) -> None:  # type: ignore[no-untyped-def]
    tower = text_tower(clip)
    assert isinstance(tower, OpenClipHFTextTower if clip.has_hf_text else OpenClipTextTower)
    tokens = clip.tokenize(TEXTS)
    assert torch.equal(tower.encode(tokens), clip.model.encode_text(tokens))
    # embeddings in: the same vectors fed as embeddings give the same features
    assert torch.equal(tower.encode_embeddings(tower.embed(tokens), tokens), clip.model.encode_text(tokens))


@torch.no_grad()
def test_text_hooks_rewrite_block_inputs_and_are_removed(clip) -> None:  # type: ignore[no-untyped-def]
    tower = text_tower(clip)
    tokens = clip.tokenize(TEXTS)
    plain = tower.encode(tokens)
    seen: list[torch.Tensor] = []
    assert torch.equal(tower.encode(tokens, {1: capture(seen)}), plain)  # a reading hook changes nothing
    assert len(seen) == 1 and seen[0].shape == (3, tokens.shape[1], tower.width)
    # writing the block's own input back is a no-op; writing something else changes the features
    own = seen[0][:, 1:3].clone()
    assert torch.equal(tower.encode(tokens, {1: replace_span(own, 1)}), plain)
    moved = tower.encode(tokens, deep_prompt_hooks([None, own[0] + 1.0], start=1))
    assert (moved - plain).abs().max() > 1e-3
    assert all(not block._forward_pre_hooks for block in tower.blocks)
    assert torch.equal(tower.encode(tokens), plain)
    with pytest.raises(ModelError, match=f"hook for text block {tower.depth}, but the tower has {tower.depth}"):
        tower.encode(tokens, {tower.depth: capture(seen)})


def test_text_pooling_follows_the_tower() -> None:
    tower = text_tower(load_model("tiny", device="cpu"))
    assert (tower.pool_type, tower.pad_id) == ("argmax", 0)  # CLIP's text: EOT has the highest id
    hf = text_tower(load_model("tiny-hf", device="cpu"))
    assert hf.pad_id == hf.module.config.pad_token_id and hf.padding_is_inert


@torch.no_grad()
def test_patch_tokens_equal_open_clip_intermediates() -> None:
    clip = load_model("tiny", device="cpu")
    visual, tower, pixels = clip.model.visual, vision_tower(clip), _pixels()
    out = visual.forward_intermediates(pixels, indices=[1, 3], intermediates_only=True, output_fmt="NLC")
    ours = tower.patch_tokens(pixels, [1, -1], project=False)
    assert all(torch.equal(a, b) for a, b in zip(ours, out["image_intermediates"]))
    projected = tower.patch_tokens(pixels, [3])[0]
    assert torch.equal(projected, visual.ln_post(out["image_intermediates"][1]) @ visual.proj)
    dense = clip.dense_features(pixels, [1, 3])
    assert all(torch.equal(a, b) for a, b in zip(dense, tower.patch_tokens(pixels, [1, 3])))


@torch.no_grad()
def test_cls_only_block_and_blocks_with_hooks() -> None:
    clip = load_model("tiny", device="cpu")
    tower = vision_tower(clip)
    x = tower.pre_norm(tower.embed(_pixels()))
    full = tower.block(3, x)
    torch.testing.assert_close(tower.block(3, x, cls_only=True), full[:, :1], atol=1e-6, rtol=0)
    prompt = torch.randn(2, tower.width)
    seen: list[torch.Tensor] = []
    tower.run_blocks(x, hooks={2: replace_span(prompt, None), 3: capture(seen)})
    expected = tower.block(1, tower.block(0, x))  # blocks 0, 1 run unchanged ...
    expected = tower.block(2, torch.cat([expected[:, :-2], prompt.expand(2, -1, -1)], dim=1))  # ... 2 sees the prompt
    assert torch.equal(seen[0], expected)


@torch.no_grad()
def test_vv_block_is_value_value_attention() -> None:
    clip = load_model("tiny", device="cpu")
    tower, block = vision_tower(clip), clip.model.visual.transformer.resblocks[2]
    x = tower.pre_norm(tower.embed(_pixels()))
    width, heads = block.attn.embed_dim, block.attn.num_heads
    v = F.linear(block.ln_1(x), block.attn.in_proj_weight[2 * width:], block.attn.in_proj_bias[2 * width:])
    v = v.view(2, -1, heads, width // heads).transpose(1, 2)  # [B, heads, L, d]
    weights = (v @ v.transpose(-1, -2) / (width // heads) ** 0.5).softmax(dim=-1)
    attended = (weights @ v).transpose(1, 2).reshape(2, -1, width)
    expected = x + block.attn.out_proj(attended)
    torch.testing.assert_close(tower.vv_block(2, x), expected, atol=1e-6, rtol=0)


@torch.no_grad()
def test_position_embeddings_resample_like_open_clip_on_load() -> None:
    clip = load_model("tiny", device="cpu")
    tower = vision_tower(clip)
    pos = clip.model.visual.positional_embedding
    assert tower.position_embedding((8, 8)) is pos  # native grid: the parameter itself
    assert resample_grid(pos, 1, (8, 8), (8, 8)) is pos
    # at 96 px (12 x 12) the tower equals open_clip's load-time resize into a 96 px model
    bigger = load_model("tiny", device="cpu", image_size=96).model
    state = clip.model.state_dict()
    resize_pos_embed(state, bigger)
    bigger.load_state_dict(state)
    pixels = _pixels(size=96)
    assert tower.grid_for(pixels) == (12, 12)
    torch.testing.assert_close(tower.forward(pixels), bigger.encode_image(pixels), atol=1e-6, rtol=0)
    assert clip.dense_features(pixels, [-1])[0].shape == (2, 144, 64)
    # the native size is untouched by having resampled for another one
    assert torch.equal(tower.forward(_pixels()), clip.model.encode_image(_pixels()))


def _tiled(pixels: torch.Tensor, n_bands: int) -> torch.Tensor:
    return pixels[:, torch.arange(n_bands) % 3]


@torch.no_grad()
def test_thirteen_bands_repeat_rule_equals_rgb_on_a_tiled_input() -> None:
    rgb = load_model("tiny", device="cpu")
    bands = load_model("tiny", device="cpu")
    bands.adapt_input_bands(13, "repeat")
    tower, pixels = vision_tower(bands), _pixels()
    assert tower.in_chans == 13 and bands.config["model_cfg"]["vision_cfg"]["in_chans"] == 13
    # equal up to float summation order (13 x 64 products per output instead of 3 x 64)
    torch.testing.assert_close(tower.embed(_tiled(pixels, 13)), vision_tower(rgb).embed(pixels), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bands.encode_images(_tiled(pixels, 13)), rgb.encode_images(pixels), atol=1e-5, rtol=0)


@torch.no_grad()
def test_average_rule_equals_rgb_on_a_grey_input() -> None:
    rgb = load_model("tiny", device="cpu")
    bands = load_model("tiny", device="cpu")
    bands.adapt_input_bands(13, "average")
    grey = _pixels()[:, :1]
    torch.testing.assert_close(bands.encode_images(grey.expand(-1, 13, -1, -1)),
                               rgb.encode_images(grey.expand(-1, 3, -1, -1)), atol=1e-5, rtol=0)


def test_band_rules_match_timm_where_timm_defines_them() -> None:
    manipulate = pytest.importorskip("timm.models._manipulate")
    from clipsuite.core.towers.bands import band_weights

    weight = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    for n in (6, 9, 12):  # multiples of 3: repeat is timm's repeat x 3/N
        torch.testing.assert_close(band_weights(weight, n, "repeat"), manipulate.adapt_input_conv(n, weight))
    torch.testing.assert_close(band_weights(weight, 1, "average"), manipulate.adapt_input_conv(1, weight))


def test_band_rule_errors_name_the_problem() -> None:
    from clipsuite.core.towers.bands import band_weights

    with pytest.raises(ModelError, match="needs at least 3 bands"):
        band_weights(torch.zeros(2, 3, 1, 1), 2, "repeat")
    with pytest.raises(ModelError, match="unknown band rule 'mean'"):
        band_weights(torch.zeros(2, 3, 1, 1), 4, "mean")


@torch.no_grad()
def test_a_thirteen_band_model_saves_and_loads_with_its_band_count(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bands = load_model("tiny", device="cpu")
    bands.adapt_input_bands(13)
    with torch.no_grad():  # train-like change, so the reload must come from the saved weights
        vision_tower(bands).patch_embedding.weight.add_(0.01 * torch.randn(128, 13, 8, 8))
    bands.save(tmp_path / "ms")
    again = load_model(str(tmp_path / "ms"), device="cpu")
    assert vision_tower(again).in_chans == 13
    assert again.config["model_cfg"]["vision_cfg"]["in_chans"] == 13
    pixels = torch.randn(2, 13, 64, 64, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again.encode_images(pixels), bands.encode_images(pixels))
