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
