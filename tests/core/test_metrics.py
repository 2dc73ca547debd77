"""Metrics against scikit-learn / torchmetrics on random inputs, ties included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from clipsuite.core.errors import InputError
from clipsuite.core.metrics import (
    accuracy,
    auroc,
    average_precision,
    f1_max,
    f1_max_threshold,
    retrieval_metrics,
    retrieval_recall,
    topk_accuracy,
)


def _binary_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = []
    for n in (7, 50, 1000):
        labels = rng.integers(0, 2, n)
        labels[:2] = [0, 1]
        cases.append((labels, rng.normal(size=n) + labels))  # continuous scores
        cases.append((labels, rng.integers(0, 5, n).astype(float)))  # heavy ties
        cases.append((labels, np.round(rng.random(n), 1)))  # ties across classes
    cases.append((np.array([0, 1, 1, 0]), np.array([0.5, 0.5, 0.5, 0.5])))  # all equal
    return cases


@pytest.mark.parametrize("case", range(10))
def test_binary_metrics_match_sklearn(case: int) -> None:
    labels, scores = _binary_cases()[case]
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    precision, recall, _ = precision_recall_curve(labels, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    assert f1_max(labels, scores) == pytest.approx(f1.max(), abs=1e-12)


def test_binary_metrics_match_torchmetrics_on_maps() -> None:
    from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision

    generator = torch.Generator().manual_seed(1)
    masks = (torch.rand(4, 16, 16, generator=generator) > 0.8).int()
    maps = torch.rand(4, 16, 16, generator=generator) + masks * 0.3
    maps = torch.round(maps * 20) / 20  # ties
    assert auroc(masks, maps) == pytest.approx(float(BinaryAUROC()(maps.flatten(), masks.flatten())), abs=1e-6)
    assert average_precision(masks, maps) == pytest.approx(
        float(BinaryAveragePrecision()(maps.flatten(), masks.flatten())), abs=1e-6)


def test_f1_max_threshold_reaches_the_f1() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    best, threshold = f1_max_threshold(labels, scores)
    predicted = scores >= threshold
    tp = (predicted & (labels == 1)).sum()
    f1 = 2 * tp / (predicted.sum() + labels.sum())
    assert best == pytest.approx(f1)
    assert best == pytest.approx(6 / 7)


def test_binary_bad_inputs() -> None:
    with pytest.raises(InputError, match="only one class"):
        auroc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="3 labels but 2 scores"):
        auroc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(InputError, match="NaN"):
        average_precision([0, 1], [0.1, float("nan")])
    with pytest.raises(InputError, match="0/1"):
        f1_max([0, 2], [0.1, 0.2])


def test_topk_accuracy_matches_torchmetrics() -> None:
    from torchmetrics.classification import MulticlassAccuracy

    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(200, 10, generator=generator)
    targets = torch.randint(0, 10, (200,), generator=generator)
    ours = topk_accuracy(logits, targets, (1, 5))
    for k in (1, 5):
        ref = MulticlassAccuracy(num_classes=10, top_k=k, average="micro")(logits, targets)
        assert ours[k] == pytest.approx(float(ref), abs=1e-6)
    assert accuracy(logits, targets) == pytest.approx(ours[1])
    assert topk_accuracy(logits, targets, (20,))[20] == 1.0  # k clipped to the class count
    with pytest.raises(InputError, match="do not match"):
        topk_accuracy(logits, targets[:5])


def _reference_recall(sim: np.ndarray, owner: np.ndarray, k: int) -> tuple[float, float]:
    """Brute force: sort each row, look for a relevant item among the first k."""
    i2t = np.mean([np.isin(np.argsort(-sim[i], kind="stable")[:k], np.flatnonzero(owner == i)).any()
                   for i in range(sim.shape[0])])
    t2i = np.mean([owner[j] in np.argsort(-sim[:, j], kind="stable")[:k] for j in range(sim.shape[1])])
    return float(i2t), float(t2i)


def test_retrieval_recall_multiple_captions() -> None:
    rng = np.random.default_rng(3)
    n_images, per_image = 30, 5
    owner = np.repeat(np.arange(n_images), per_image)
    images = rng.normal(size=(n_images, 16))
    texts = images[owner] + rng.normal(scale=2.0, size=(owner.size, 16))
    sim = images @ texts.T
    out = retrieval_recall(sim, owner)
    for k in (1, 5, 10):
        i2t, t2i = _reference_recall(sim, owner, k)
        assert out[f"image_to_text_R@{k}"] == pytest.approx(i2t)
        assert out[f"text_to_image_R@{k}"] == pytest.approx(t2i)
    assert out["mean_recall"] == pytest.approx(np.mean([v for key, v in out.items() if key != "mean_recall"]))
    assert 0 < out["image_to_text_R@1"] < 1  # the case is not trivial


def test_retrieval_perfect_and_bad_inputs() -> None:
    embeddings = torch.nn.functional.normalize(torch.eye(4), dim=-1)
    out = retrieval_metrics(embeddings, embeddings[[0, 0, 1, 2, 3]], [0, 0, 1, 2, 3])
    assert out["mean_recall"] == 1.0
    with pytest.raises(InputError, match="has no caption"):
        retrieval_recall(torch.zeros(3, 2), [0, 1])
    with pytest.raises(InputError, match="does not match"):
        retrieval_recall(torch.zeros(3, 2), [0, 1, 2])
    with pytest.raises(InputError, match="same D"):
        retrieval_metrics(torch.zeros(3, 4), torch.zeros(3, 5), [0, 1, 2])
