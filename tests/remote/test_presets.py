from __future__ import annotations

import pytest

from clipsuite.core.errors import ModelError
from clipsuite.core.models import load_model
from clipsuite.core.presets import find_preset


def test_remote_presets_are_installed_through_the_entry_point():
    assert find_preset("rs-m-clip").spec == "hf-hub:joaodaniel/RS-M-CLIP"
    assert find_preset("remoteclip-b32").spec == "ViT-B-32"
    assert find_preset("georsclip-b32").pretrained == "hf-hub:Zilun/GeoRSCLIP/ckpt/RS5M_ViT-B-32.pt"
    assert find_preset("tiny-multilingual").domain == "offline"


def test_file_presets_refuse_without_the_file_instead_of_a_random_model(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="RemoteCLIP-ViT-B-32.pt"):
        load_model("remoteclip-b32", device="cpu")
