"""load_model / ClipModel on the built-in offline configs."""

from __future__ import annotations

import pytest
import torch

from clipsuite.core import ModelError, WeightsUnavailableError, load_model
from clipsuite.core.checkpoints import save_tensors
from clipsuite.core.towers import vision_tower


def test_encoders_return_normalized_cpu_float(tiny):
    images = torch.randn(3, 3, tiny.image_size, tiny.image_size)
    feats = tiny.encode_images(images, batch_size=2)
    texts = tiny.encode_texts(["a red circle", "a blue square"])
    assert feats.shape == (3, tiny.embed_dim) and texts.shape == (2, tiny.embed_dim)
    assert feats.dtype == torch.float32 and feats.device.type == "cpu"
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(texts.norm(dim=-1), torch.ones(2))


def test_encode_images_matches_open_clip_forward(tiny):
    images = torch.randn(2, 3, tiny.image_size, tiny.image_size)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(tiny.model.encode_image(images), dim=-1)
    torch.testing.assert_close(tiny.encode_images(images), expected)


def test_dense_features_last_layer_matches_pooled_path(tiny):
    images = torch.randn(2, 3, tiny.image_size, tiny.image_size)
    grid = tiny.patch_grid
    (first, last) = tiny.dense_features(images, [0, -1])
    assert first.shape == last.shape == (2, grid[0] * grid[1], tiny.embed_dim)
    # the projected tokens of the last block, run through the same ln_post/proj as the pooled CLS
    visual = tiny.model.visual
    with torch.no_grad():
        tokens = visual.transformer(visual._embeds(images))
        expected = visual.ln_post(tokens[:, 1:]) @ visual.proj
    torch.testing.assert_close(last, expected)


def test_paths_and_pil_images_encode(tiny, tmp_path):
    from PIL import Image

    path = tmp_path / "red.png"
    Image.new("RGB", (80, 60), (255, 0, 0)).save(path)
    by_path = tiny.encode_images([path])
    by_pil = tiny.encode_images([Image.open(path)])
    torch.testing.assert_close(by_path, by_pil)


@pytest.mark.parametrize("spec", ["tiny", "tiny-hf"])
def test_save_load_round_trip(spec, tmp_path):
    model = load_model(spec, device="cpu")
    folder = model.save(tmp_path / "saved")
    assert (folder / "open_clip_config.json").is_file()
    assert (folder / "open_clip_model.safetensors").is_file()
    images = torch.randn(2, 3, model.image_size, model.image_size)
    for reloaded in (load_model(str(folder)), load_model(f"local-dir:{folder}"),
                     load_model(str(folder / "open_clip_model.safetensors"))):
        torch.testing.assert_close(reloaded.encode_images(images), model.encode_images(images))
        torch.testing.assert_close(reloaded.encode_texts(["a photo of a lesion"]),
                                   model.encode_texts(["a photo of a lesion"]))


def test_saved_weights_load_at_another_image_size(tmp_path):
    """A trained model run at a larger size than its weights' (AnomalyCLIP runs at 518 px): the
    position grid is resampled on load, like open_clip's own pretrained loading, so the loaded model
    equals the native one run at that size (whose tower resamples at forward time)."""
    model = load_model("tiny", device="cpu")
    folder = model.save(tmp_path / "saved")
    bigger = load_model(str(folder), device="cpu", image_size=96)
    assert bigger.image_size == 96 and bigger.patch_grid == (12, 12)
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        native_at_96 = torch.nn.functional.normalize(vision_tower(model).forward(images), dim=-1)
    torch.testing.assert_close(bigger.encode_images(images), native_at_96, atol=1e-6, rtol=0)
    # a size the weights do not fit is still refused without image_size: no silent resampling
    save_tensors(tmp_path / "big.safetensors", bigger.model.state_dict())
    with pytest.raises(ModelError, match="mis-shaped"):
        load_model("tiny", pretrained=str(tmp_path / "big.safetensors"))


def test_checkpoint_of_other_architecture_is_one_clear_error(tmp_path):
    small = load_model("small", device="cpu")
    weights = tmp_path / "small.safetensors"
    save_tensors(weights, small.model.state_dict())
    with pytest.raises(ModelError, match="does not fit the 'tiny' architecture"):
        load_model("tiny", pretrained=str(weights))


def test_unknown_model_name():
    with pytest.raises(ModelError, match="unknown model 'no-such-model'"):
        load_model("no-such-model")


def test_missing_weights_offline_says_what_to_pass(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="pass a local copy"):
        load_model("ViT-B-32", pretrained="laion2b_s34b_b79k")


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(ModelError, match="unknown pretrained tag 'nope'"):
        load_model("ViT-B-32", pretrained="nope")


def test_builtin_random_init_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = load_model("tiny", device="cpu")
    assert torch.equal(torch.rand(1), expected_next)
    second = load_model("tiny", device="cpu")
    for (name, a), (_, b) in zip(first.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(a, b), name
