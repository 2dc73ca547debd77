"""TextTower.encode_states: per-token final states (what diffusers' UNets attend to)."""

from __future__ import annotations

import pytest
import torch

from clipsuite.core.errors import ModelError
from clipsuite.core.models import load_model
from clipsuite.core.towers import text_tower


def test_states_equal_transformers_last_hidden_state() -> None:
    clip = load_model("tiny-transformers", device="cpu")
    tower = text_tower(clip)
    tokens = tower.tokenize(["a photo of a red dress", "a model"])
    with torch.no_grad():
        ours = tower.encode_states(tower.embed(tokens), tokens)
        theirs = clip.hf.text_model(input_ids=tokens, attention_mask=tower.attention_mask(tokens)).last_hidden_state
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert ours.shape == (2, tokens.shape[1], tower.width)


def test_open_clip_tower_says_it_has_no_states() -> None:
    tower = text_tower(load_model("tiny", device="cpu"))
    tokens = tower.tokenize(["x"])
    with pytest.raises(ModelError, match="per-token states"):
        tower.encode_states(tower.embed(tokens), tokens)


def test_clip_skip_gives_the_penultimate_layer_as_sd2_reads_it() -> None:
    """SD-2's text encoder is OpenCLIP ViT-H's text tower cut one layer short: ``clip_skip=1`` on the whole
    tower must equal both transformers' ``hidden_states[-2]`` + final norm and a one-layer-shorter model."""
    from transformers import CLIPTextModel

    clip = load_model("tiny-transformers", device="cpu")
    tower = text_tower(clip)
    tokens = tower.tokenize(["a photo of a model wearing a dress", "a model"])
    hf = clip.hf.text_model
    with torch.no_grad():
        ours = tower.encode_states(tower.embed(tokens), tokens, clip_skip=1)
        out = hf(input_ids=tokens, attention_mask=tower.attention_mask(tokens), output_hidden_states=True)
        penultimate = hf.final_layer_norm(out.hidden_states[-2])
        config = clip.hf.config.text_config
        config = type(config).from_dict({**config.to_dict(), "num_hidden_layers": config.num_hidden_layers - 1})
        shorter = CLIPTextModel(config).eval()
        missing, unexpected = shorter.load_state_dict(hf.state_dict(), strict=False)
        assert not missing and all(".layers." in k for k in unexpected)
        cut = shorter(input_ids=tokens, attention_mask=tower.attention_mask(tokens)).last_hidden_state
        last = tower.encode_states(tower.embed(tokens), tokens)
    torch.testing.assert_close(ours, penultimate, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours, cut, rtol=0, atol=1e-5)
    assert (ours - last).abs().max() > 1e-3   # a different layer, not the same states
    with pytest.raises(ModelError, match=f"clip_skip {tower.depth} for a text tower of {tower.depth} layers"):
        tower.encode_states(tower.embed(tokens), tokens, clip_skip=tower.depth)
