"""Retrieval recall with several captions per image: against a plain brute-force reference, against
open_clip's own one-caption recall, tie handling, and the evaluation of a model on caption data."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from open_clip_train.train import get_clip_metrics

from clipsuite.core.data import Pair, read_pairs
from clipsuite.core.errors import InputError
from clipsuite.core.metrics import retrieval_recall
from clipsuite.core.models import load_model
from clipsuite.core.retrieval import caption_index, evaluate_retrieval
from clipsuite.core.synthetic import write_shapes_dataset
from clipsuite.core.tabular import read_table

KS = (1, 5, 10)


def brute_force(sim: np.ndarray, owner: np.ndarray, k: int, image_order: list[int] | None = None,
                caption_order: list[int] | None = None) -> tuple[float, float]:
    """Recall@k written out plainly: rank every list by score (ties in the given item order) and look
    for a correct item among the first k."""
    n_images, n_captions = sim.shape
    image_order = image_order or list(range(n_images))
    caption_order = caption_order or list(range(n_captions))
    image_hits = 0
    for i in range(n_images):
        ranked = sorted(caption_order, key=lambda j: -sim[i, j])  # sorted() is stable: ties keep the order
        if any(owner[j] == i for j in ranked[:k]):
            image_hits += 1
    caption_hits = 0
    for j in range(n_captions):
        ranked = sorted(image_order, key=lambda i: -sim[i, j])
        if owner[j] in ranked[:k]:
            caption_hits += 1
    return image_hits / n_images, caption_hits / n_captions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_several_captions_per_image_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 6, size=25)  # 1 to 5 captions per image, as real caption sets vary
    owner = rng.permutation(np.repeat(np.arange(25), counts))  # captions in no particular order
    images = rng.normal(size=(25, 16))
    texts = images[owner] + rng.normal(scale=3.0, size=(owner.size, 16))
    sim = images @ texts.T
    out = retrieval_recall(sim, owner, KS)
    for k in KS:
        i2t, t2i = brute_force(sim, owner, k)
        assert out[f"image_to_text_R@{k}"] == pytest.approx(i2t, abs=1e-12)
        assert out[f"text_to_image_R@{k}"] == pytest.approx(t2i, abs=1e-12)
    six = [out[f"{d}_R@{k}"] for d in ("image_to_text", "text_to_image") for k in KS]
    assert out["mean_recall"] == pytest.approx(sum(six) / 6)
    assert 0 < out["image_to_text_R@1"] < out["image_to_text_R@10"] < 1  # neither trivial nor saturated


def test_one_caption_per_image_equals_open_clip() -> None:
    generator = torch.Generator().manual_seed(4)
    images = torch.nn.functional.normalize(torch.randn(40, 32, generator=generator), dim=-1)
    texts = torch.nn.functional.normalize(images + 0.9 * torch.randn(40, 32, generator=generator), dim=-1)
    reference = get_clip_metrics(images, texts, logit_scale=torch.tensor(100.0))
    ours = retrieval_recall(images @ texts.T, torch.arange(40), KS)
    for direction in ("image_to_text", "text_to_image"):
        for k in KS:
            assert ours[f"{direction}_R@{k}"] == pytest.approx(float(reference[f"{direction}_R@{k}"]), abs=1e-12)
    assert 0 < ours["image_to_text_R@1"] < 1


def test_ties_count_as_broken_at_random() -> None:
    """Exact ties (identical captions, a collapsed model) score the average over every tie order."""
    rng = np.random.default_rng(7)
    for _ in range(3):
        sim = rng.integers(0, 3, size=(3, 5)).astype(np.float64)  # scores 0, 1, 2: ties everywhere
        owner = np.array([0, 0, 1, 2, 1])
        out = retrieval_recall(sim, owner, (1, 2, 3))
        orders = list(itertools.permutations(range(5)))
        image_orders = list(itertools.permutations(range(3)))
        for k in (1, 2, 3):
            i2t = np.mean([brute_force(sim, owner, k, caption_order=list(o))[0] for o in orders])
            t2i = np.mean([brute_force(sim, owner, k, image_order=list(o))[1] for o in image_orders])
            assert out[f"image_to_text_R@{k}"] == pytest.approx(i2t, abs=1e-12)
            assert out[f"text_to_image_R@{k}"] == pytest.approx(t2i, abs=1e-12)
    collapsed = retrieval_recall(np.ones((20, 20)), np.arange(20), KS)
    assert [collapsed[f"text_to_image_R@{k}"] for k in KS] == pytest.approx([0.05, 0.25, 0.5])


def test_bad_similarity_inputs() -> None:
    with pytest.raises(InputError, match="NaN or infinity"):
        retrieval_recall(np.array([[np.nan, 1.0]]), [0, 0])
    with pytest.raises(InputError, match=r"owners must index 0..1"):
        retrieval_recall(np.zeros((2, 2)), [0, 2])


def test_caption_index_groups_pairs_by_image(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    pairs = [Pair(a, "one", "x"), Pair(b, "two", "x"), Pair(a, "three", "x")]
    index = caption_index(pairs)
    assert index.images == [a, b] and index.first_pair == [0, 1]
    assert index.captions == ["one", "two", "three"] and index.owners.tolist() == [0, 1, 0]
    with pytest.raises(InputError, match="at least one"):
        caption_index([])


def test_evaluate_retrieval_on_karpathy_captions(tmp_path: Path) -> None:
    table = write_shapes_dataset(tmp_path, n=12, seed=3, image_size=32)
    rows = [(r.text("filepath"), r.text("title")) for r in read_table(table)]
    images = [{"filename": Path(path).name, "filepath": str(Path(path).parent), "split": "test",
               "sentences": [{"raw": title}, {"raw": f"{title} again"}, {"raw": "a picture"}]} for path, title in rows]
    karpathy = tmp_path / "dataset.json"
    karpathy.write_text(json.dumps({"images": images}))
    pairs = read_pairs(karpathy, split="test")
    assert len(pairs) == 36
    torch.manual_seed(0)
    clip = load_model("tiny", device="cpu")
    out = evaluate_retrieval(clip, pairs, KS, batch_size=5)
    assert out["images"] == 12 and out["captions"] == 36
    image_features = clip.encode_images([tmp_path / path for path, _ in rows])
    text_features = clip.encode_texts([p.caption for p in pairs])
    sim = (image_features @ text_features.T).numpy()
    owner = np.repeat(np.arange(12), 3)
    for k in KS:
        i2t, t2i = brute_force(sim, owner, k)
        assert out[f"image_to_text_R@{k}"] == pytest.approx(i2t, abs=1e-6)
        assert out[f"text_to_image_R@{k}"] == pytest.approx(t2i, abs=1e-6)
