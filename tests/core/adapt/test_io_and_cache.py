"""Adapter files round-trip for every head kind; the feature cache equals direct encoding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipsuite.core.adapt.feature_cache import cached_features, encode_items
from clipsuite.core.adapt.fewshot_data import base_novel, load_split
from clipsuite.core.adapt.io import load_classifier
from clipsuite.core.adapt.registry import MethodOptions
from clipsuite.core.adapt.runner import evaluate_file, prepare, train_one
from clipsuite.core.errors import InputError
from clipsuite.core.models import load_model


@pytest.fixture(scope="module")
def data(shapes_split: Path):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return prepare(load_model("tiny", device="cpu"), load_split(shapes_split), 2, seed=0, views=2)


QUICK = MethodOptions(epochs=1, batch_size=8)


@pytest.mark.parametrize("method", ["zeroshot", "coop", "cocoop", "maple", "tip-adapter", "gda", "linear-probe",
                                    "clap"])
def test_saved_adapter_gives_the_same_logits(method: str, data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"{method}.safetensors"
    trained, row = train_one(method, data, QUICK, output=path)
    assert path.stat().st_size < 2_000_000  # learned tensors only, never the CLIP weights
    loaded = load_classifier(path, data.clip)
    assert loaded.class_names == data.class_names and loaded.method == method
    if loaded.needs_pixels:
        inputs, _ = data.pixels("test")
        with pytest.raises(InputError, match="give it images"):
            loaded.logits(data.features("test").features[0])
    else:
        inputs = data.features("test").features[0]
    torch.testing.assert_close(loaded.logits(inputs[:16]), trained.logits(inputs[:16]), atol=1e-4, rtol=1e-4)
    pixels, _ = data.pixels("test")  # every classifier also takes pixels
    assert loaded.logits(pixels[:3]).shape == (3, len(data.class_names))
    assert evaluate_file(path, data.clip, data.split).accuracy == pytest.approx(row.accuracy)


def test_learned_prompt_transfers_to_novel_classes(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = prepare(data.clip, base_novel(data.split, "base"), 2, seed=0, views=0)
    path = tmp_path / "coop-base.safetensors"
    train_one("coop", base, QUICK, output=path)
    novel = base_novel(data.split, "novel")
    moved = load_classifier(path, data.clip, novel.class_names)
    assert moved.class_names == novel.class_names
    assert moved.logits(data.features("test").features[0][:4]).shape == (4, 6)
    with pytest.raises(InputError, match="tied to its"):
        load_classifier(tmp_path / "gda.safetensors" if False else _gda(base, tmp_path), data.clip, novel.class_names)


def _gda(data, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "gda.safetensors"
    train_one("gda", data, QUICK, output=path)
    return path


def test_bad_adapter_files(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="broken.safetensors: not a readable safetensors file"):
        load_classifier(broken, data.clip)
    other = tmp_path / "other.safetensors"
    from clipsuite.core.checkpoints import save_tensors

    save_tensors(other, {"x": torch.zeros(2)}, {"something": "else"})
    with pytest.raises(InputError, match="not a clipsuite adapter file"):
        load_classifier(other, data.clip)
    path = _gda(data, tmp_path)
    small = load_model("small", device="cpu")
    if small.embed_dim != data.clip.embed_dim:
        with pytest.raises(InputError, match="embed_dim"):
            load_classifier(path, small)


def test_feature_cache_equals_direct_encoding_and_is_reused(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    items = data.split.train[:6]
    direct = data.clip.encode_images([i.path for i in items])
    first = cached_features(data.clip, items, cache_dir=tmp_path)
    torch.testing.assert_close(first.features[0], direct)
    files = list(tmp_path.glob("features-*.safetensors"))
    assert len(files) == 1
    again = cached_features(data.clip, items, cache_dir=tmp_path)
    torch.testing.assert_close(again.features, first.features)
    views = encode_items(data.clip, items, views=3, seed=5)
    assert views.features.shape == (3, 6, data.clip.embed_dim)
    torch.testing.assert_close(encode_items(data.clip, items, views=3, seed=5).features, views.features)
    assert not torch.allclose(views.features[0], views.features[1])  # the views are augmented differently
