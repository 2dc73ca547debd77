"""The synthetic caption corpus and the cached pretrained backbone (built small here)."""

from __future__ import annotations

import numpy as np

from clipsuite.core.models import load_model
from clipsuite.core.pretrain import PretrainConfig, demo_backbone, ensure_pretrained, find_cached
from clipsuite.core.synthetic_corpus import HELD_OUT, CorpusItem, corpus_categories, corpus_pairs, render


def test_corpus_is_seeded_and_captions_what_is_drawn():
    first, again = corpus_pairs(16, seed=3), corpus_pairs(16, seed=3)
    assert [c for _, c in first] == [c for _, c in again]
    assert np.array_equal(np.asarray(first[5][0]), np.asarray(again[5][0]))
    captions = [c for _, c in corpus_pairs(200, seed=0)]
    assert any("scratched" in c or "with a scratch" in c for c in captions)
    assert any("lesion on the left" in c for c in captions) and any("without lesion" in c for c in captions)
    assert not set(corpus_categories()) & set(HELD_OUT)


def test_defects_and_lesions_change_the_pixels_where_drawn():
    normal = np.asarray(render(CorpusItem("parts", "button", None), 64, seed=7)).astype(float)
    holed = np.asarray(render(CorpusItem("parts", "button", "hole"), 64, seed=7)).astype(float)
    changed = np.abs(holed - normal).sum(-1) > 30
    assert 10 < changed.sum() < 64 * 64 / 4  # a local defect, not a different image
    left = np.asarray(render(CorpusItem("slices", "chest", "lesion", "left"), 64, seed=1)).astype(float)
    clean = np.asarray(render(CorpusItem("slices", "chest", None), 64, seed=1)).astype(float)
    columns = np.nonzero((np.abs(left - clean).sum(-1) > 300).any(0))[0]
    assert columns.size and columns.max() < 32  # the lesion is on the image's left half


def test_backbone_is_built_once_and_keyed_by_config(tmp_path):
    config = PretrainConfig(n_pairs=64, epochs=1, batch_size=32, warmup_steps=0)
    assert find_cached(config, tmp_path) is None
    assert demo_backbone(tmp_path)[0] == "tiny"  # nothing cached: the demo says it uses random tiny
    path = ensure_pretrained(config, tmp_path)
    stamp = (path / "open_clip_config.json").stat().st_mtime_ns
    assert ensure_pretrained(config, tmp_path) == path == find_cached(config, tmp_path)
    assert (path / "open_clip_config.json").stat().st_mtime_ns == stamp  # reused, not retrained
    assert PretrainConfig(n_pairs=65).key() != PretrainConfig().key()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no leftover build folder
    clip = load_model(str(path), device="cpu")
    assert clip.embed_dim == 64


def test_demo_uses_the_cached_backbone(tmp_path, monkeypatch):
    import clipsuite.core.pretrain as pretrain

    target = pretrain.cached_path(cache_dir=tmp_path)
    target.mkdir(parents=True)
    (target / "open_clip_config.json").write_text("{}")
    spec, words = demo_backbone(tmp_path)
    assert spec == str(target) and "pretrained synthetic backbone" in words
