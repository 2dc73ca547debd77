from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipsuite.core.errors import ModelError
from clipsuite.core.models import load_model
from clipsuite.core.towers import text_tower, vision_tower
from clipsuite.core.train import TrainConfig
from clipsuite.generative.components import build_parts
from clipsuite.generative.data import VitonHD
from clipsuite.generative.methods.inversion import (
    InversionAdapter,
    InversionTask,
    placeholder_id,
    prompt_states,
    tryon_prompt,
)
from clipsuite.generative.methods.tryon_unet import TryOnUNet
from clipsuite.generative.train import train_stage


@pytest.fixture(scope="module")
def clip():  # type: ignore[no-untyped-def]
    return load_model("tiny-transformers", device="cpu")


def test_placeholder_replacement_through_the_text_tower(clip) -> None:  # type: ignore[no-untyped-def]
    tower = text_tower(clip)
    prompt = tryon_prompt("upper_body", 4)
    tokens = tower.tokenize([prompt])
    mark = placeholder_id(tower)
    assert int((tokens == mark).sum()) == 4
    with torch.no_grad():
        # pseudo-words equal to the "$" embedding itself: the prompt's own states
        same = tower.embed(torch.full((1, 4), mark))
        torch.testing.assert_close(prompt_states(tower, [prompt], same),
                                   clip.hf.text_model(input_ids=tokens,
                                                      attention_mask=tower.attention_mask(tokens)).last_hidden_state,
                                   rtol=0, atol=1e-6)
        other = prompt_states(tower, [prompt], torch.randn(1, 4, tower.width))
    assert (other - prompt_states(tower, [prompt], same)).abs().max() > 1e-3
    with pytest.raises(ModelError, match="4] placeholders for 3 pseudo-words"):
        prompt_states(tower, [prompt], torch.randn(1, 3, tower.width))


def test_adapter_shapes_and_gradient_reaches_it(clip) -> None:  # type: ignore[no-untyped-def]
    vision, text = vision_tower(clip), text_tower(clip)
    adapter = InversionAdapter(vision.width, text.width, n_tokens=4)
    words = adapter(torch.randn(2, 65, vision.width))
    assert words.shape == (2, 4, text.width)
    states = prompt_states(text, [tryon_prompt("dresses", 4)] * 2, words)
    states.sum().backward()
    assert adapter.mlp[-1].weight.grad is not None and adapter.mlp[-1].weight.grad.abs().sum() > 0


def test_inversion_stage_loss_falls(clip, vitonhd: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = VitonHD(vitonhd, "train", size=(32, 24))
    parts = build_parts("micro", seed=0, cross_attention_dim=text_tower(clip).width)
    torch.manual_seed(0)
    task = InversionTask(InversionAdapter(vision_tower(clip).width, text_tower(clip).width, n_tokens=4), clip,
                         TryOnUNet(parts.unet), parts.vae, parts.scheduler)
    batch = torch.utils.data.default_collate([data[i] for i in range(len(data))])

    def loss() -> float:
        torch.manual_seed(5)
        with torch.no_grad():
            return float(task.loss(batch))
    before = loss()
    train_stage(task, data, TrainConfig(output_dir=tmp_path, max_steps=8, batch_size=6, lr=1e-3, progress=False,
                                        precision="fp32", schedule="constant"), tmp_path / "inversion.safetensors")
    assert loss() < before
    assert all(not p.requires_grad for p in parts.unet.parameters())
