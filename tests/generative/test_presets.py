"""Presets for the published try-on weights: each names its real source and loader; offline, none ends
with random weights (an error naming the weights instead), and random shapes must be asked for by name."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from clipsuite.core.errors import ModelError, WeightsUnavailableError
from clipsuite.core.models import load_model
from clipsuite.core.presets import presets
from clipsuite.generative import names
from clipsuite.generative import presets as gen_presets
from clipsuite.generative.components import SIZES, build_parts
from clipsuite.generative.methods.tryon_unet import TryOnUNet
from clipsuite.generative.tryon import StageFiles, TryOnModel, diffusion_parts


@pytest.fixture
def offline(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    """Empty hub and torch-hub caches, offline set, and any connection is a test failure."""
    from huggingface_hub import constants

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError(f"network request attempted: {args[:1]}")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
    return tmp_path


def test_the_clip_preset_is_a_core_preset_naming_its_weights(offline) -> None:  # type: ignore[no-untyped-def]
    preset = presets()["ladi-vton-clip"]
    assert preset is gen_presets.LADI_VTON_CLIP and preset.loader == "transformers"
    assert preset.spec == "hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K" and "laion/CLIP-ViT-H-14" in preset.source
    with pytest.raises(WeightsUnavailableError, match="laion/CLIP-ViT-H-14-laion2B-s32B-b79K"):
        load_model("ladi-vton-clip", device="cpu")
    assert gen_presets.text_clip_skip("ladi-vton-clip") == 1 and gen_presets.text_clip_skip("tiny-transformers") == 0


def test_parts_presets_never_end_random(offline) -> None:  # type: ignore[no-untyped-def]
    assert tuple(gen_presets.PARTS_PRESETS) == names.PART_PRESETS and tuple(SIZES) == names.PART_SIZES
    assert not set(names.PART_PRESETS) & set(SIZES)     # a published name is never a random size
    for name in names.PART_PRESETS:
        with pytest.raises(WeightsUnavailableError) as caught:
            diffusion_parts(name, 1024)
        message = str(caught.value)
        assert gen_presets.PARTS_PRESETS[name] in message and f"'{name}-random'" in message
        assert "\n" not in message


def test_ladi_vton_stage_weights_named_loaded_or_refused(offline, tmp_path: Path) -> None:  # type: ignore
    clip = load_model("tiny-transformers", device="cpu")
    assert tuple(gen_presets.STAGE_PRESETS) == names.STAGE_PRESETS
    for name, weights in gen_presets.STAGE_PRESETS.items():
        assert weights.url("unet") == ("https://github.com/miccunifi/ladi-vton/releases/download/weights/"
                                       f"unet_{weights.dataset}.pth")
        assert weights.url("inversion").endswith(f"/inversion_adapter_{weights.dataset}.pth")
        with pytest.raises(WeightsUnavailableError, match=f"unet_{weights.dataset}.pth not found"):
            TryOnModel.build(clip, "micro", StageFiles(unet=Path(name)), (32, 24))
        for stage in ("emasc", "warping", "inversion"):
            with pytest.raises(ModelError, match=f"{name}: LaDI-VTON's .*_{weights.dataset}.pth holds .* not "
                                                 f"clipsuite's {stage} part"):
                TryOnModel.build(clip, "micro", StageFiles(**{stage: Path(name)}), (32, 24))
    # a file at the cached place loads, every weight (here micro-shaped, as a stand-in for the real one)
    weights = gen_presets.STAGE_PRESETS["ladi-vton-vitonhd"]
    from clipsuite.core.towers import text_tower

    donor = TryOnUNet(build_parts("micro", seed=5, cross_attention_dim=text_tower(clip).width).unet)
    with torch.no_grad():
        donor.unet.conv_in.weight.add_(0.5)
    weights.cached("unet").parent.mkdir(parents=True)
    torch.save(donor.unet.state_dict(), weights.cached("unet"))
    model = TryOnModel.build(clip, "micro", StageFiles(unet=Path("ladi-vton-vitonhd")), (32, 24))
    for key, value in donor.unet.state_dict().items():
        assert torch.equal(model.pipeline.unet.unet.state_dict()[key], value), key
    # the wrong shapes are one line naming the file and the parts it needs
    torch.save({"conv_in.weight": torch.zeros(1)}, weights.cached("unet"))
    with pytest.raises(ModelError, match=r"unet_vitonhd\.pth: does not fit .* needs --parts sd2-inpainting"):
        TryOnModel.build(clip, "micro", StageFiles(unet=Path("ladi-vton-vitonhd")), (32, 24))


def test_prompts_follow_the_presets_clip_skip(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from clipsuite.core.towers import text_tower

    clip = load_model("tiny-transformers", device="cpu")
    monkeypatch.setitem(gen_presets.CLIP_SKIP, "tiny-transformers", 1)
    model = TryOnModel.build(clip, "micro", StageFiles(), (32, 24))
    states, null = model.prompt_states("upper_body", torch.zeros(1, 3, 32, 24))
    tower = text_tower(clip)
    tokens = tower.tokenize(["a photo of a model wearing upper body garment"])
    with torch.no_grad():
        expected = tower.encode_states(tower.embed(tokens), tokens, clip_skip=1)
    torch.testing.assert_close(states, expected)
