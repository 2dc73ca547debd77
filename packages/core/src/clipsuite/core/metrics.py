"""Evaluation metrics shared by every domain: classification, retrieval and anomaly detection.

Inputs may be torch tensors, numpy arrays or lists; results are plain Python floats. The binary
metrics (AUROC, AP, F1-max) follow scikit-learn's definitions exactly, ties included: scores that
are equal form one threshold, so the curves step over them together. Pixel-level anomaly maps are
flattened first, so ``[N, H, W]`` masks and maps can be passed as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from clipsuite.core.errors import InputError

ArrayLike = torch.Tensor | np.ndarray | Sequence[Any]


def _numpy(values: ArrayLike, dtype: Any = np.float64) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64 if dtype == np.float64 else values.dtype).numpy()
    return np.asarray(values, dtype=dtype)


def _tensor(values: ArrayLike) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu()
    return torch.as_tensor(np.asarray(values))


# ---- classification -----------------------------------------------------------------------------
def topk_accuracy(logits: ArrayLike, targets: ArrayLike, topk: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Fraction of rows whose target is among the ``k`` highest logits, for each ``k`` in ``topk``.

    ``k`` larger than the number of classes is clipped (every row then counts as a hit).
    """
    scores, labels = _tensor(logits).float(), _tensor(targets).long().reshape(-1)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise InputError(f"topk_accuracy: logits {tuple(scores.shape)} and targets {tuple(labels.shape)} "
                         "do not match (expected [N, C] and [N])")
    if labels.numel() == 0:
        raise InputError("topk_accuracy: no samples")
    if int(labels.min()) < 0 or int(labels.max()) >= scores.shape[1]:
        raise InputError(f"topk_accuracy: target outside 0..{scores.shape[1] - 1}")
    widest = min(max(topk), scores.shape[1])
    ranked = scores.topk(widest, dim=1).indices
    hits = ranked == labels[:, None]
    return {k: float(hits[:, :min(k, widest)].any(dim=1).float().mean()) for k in topk}


def accuracy(logits: ArrayLike, targets: ArrayLike) -> float:
    """Top-1 accuracy."""
    return topk_accuracy(logits, targets, (1,))[1]


# ---- retrieval ----------------------------------------------------------------------------------
def _hit_probability(similarity: torch.Tensor, relevant: torch.Tensor, k: int) -> torch.Tensor:
    """Per row, the chance that a relevant item is among the top ``k`` when exact ties are ordered at
    random: the expected value of a sort-based recall, and independent of any sort order.

    With ``h`` items strictly above the best relevant score and a tie group of ``t`` items at that
    score holding ``r`` relevant ones, ``m = k - h`` places are left: a hit for sure when ``m >= t``,
    never when ``m <= 0``, else ``1 - C(t - r, m) / C(t, m)``. Without ties this is the plain
    "is the first relevant item within the top k". Ties are not credited for free: a collapsed model
    (all scores equal) scores chance, not a perfect recall.
    """
    sim = similarity.double()
    best = torch.where(relevant, sim, torch.full_like(sim, -torch.inf)).max(dim=1, keepdim=True).values
    higher = (sim > best).sum(dim=1).double()
    tied = sim == best
    t = tied.sum(dim=1).double()
    r = (tied & relevant).sum(dim=1).double()
    m = (k - higher).clamp(min=0)
    # C(t - r, m) / C(t, m) through log-gamma; zero where fewer than m irrelevant items tie
    misses = t - r
    log_ratio = (torch.lgamma(misses + 1) - torch.lgamma((misses - m).clamp(min=0) + 1)
                 - torch.lgamma(t + 1) + torch.lgamma((t - m).clamp(min=0) + 1))
    miss_all = torch.where(misses >= m, log_ratio.exp(), torch.zeros_like(t))
    return torch.where(m >= t, torch.ones_like(t), torch.where(m <= 0, torch.zeros_like(t), 1 - miss_all))


def retrieval_recall(similarity: ArrayLike, text_to_image: ArrayLike,
                     ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@K both ways from an image x text similarity matrix ``[N_images, N_texts]``.

    ``text_to_image[j]`` is the image that caption ``j`` describes (several captions per image are
    fine). Image->text is a hit when ANY of the image's captions is in its top ``k``; text->image when
    the caption's image is. Keys: ``image_to_text_R@k``, ``text_to_image_R@k`` and ``mean_recall``
    (the mean over all of them, the usual RSICD / COCO "mR" when ``ks`` is 1, 5, 10). Exact ties are
    counted as if broken at random (in expectation), see ``_hit_probability``.
    """
    sim = _tensor(similarity).float()
    owner = _tensor(text_to_image).long().reshape(-1)
    if sim.ndim != 2 or sim.shape[1] != owner.shape[0]:
        raise InputError(f"retrieval_recall: similarity {tuple(sim.shape)} does not match "
                         f"{owner.shape[0]} caption owners (expected [N_images, N_texts])")
    if owner.numel() == 0 or int(owner.min()) < 0 or int(owner.max()) >= sim.shape[0]:
        raise InputError(f"retrieval_recall: caption owners must index 0..{sim.shape[0] - 1}")
    if not bool(torch.isfinite(sim).all()):
        raise InputError("retrieval_recall: the similarity matrix holds NaN or infinity")
    relevant = owner[None, :] == torch.arange(sim.shape[0])[:, None]  # [N_images, N_texts]
    if not bool(relevant.any(dim=1).all()):
        missing = int((~relevant.any(dim=1)).nonzero()[0])
        raise InputError(f"retrieval_recall: image {missing} has no caption")
    out: dict[str, float] = {}
    for k in ks:
        out[f"image_to_text_R@{k}"] = float(_hit_probability(sim, relevant, k).mean())
    for k in ks:
        out[f"text_to_image_R@{k}"] = float(_hit_probability(sim.T, relevant.T, k).mean())
    out["mean_recall"] = float(np.mean(list(out.values())))
    return out


def retrieval_metrics(image_embeddings: ArrayLike, text_embeddings: ArrayLike, text_to_image: ArrayLike,
                      ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """``retrieval_recall`` on cosine similarity of (already normalised) embeddings."""
    images, texts = _tensor(image_embeddings).float(), _tensor(text_embeddings).float()
    if images.ndim != 2 or texts.ndim != 2 or images.shape[1] != texts.shape[1]:
        raise InputError(f"retrieval_metrics: embeddings {tuple(images.shape)} and {tuple(texts.shape)} "
                         "must be [N, D] with the same D")
    return retrieval_recall(images @ texts.T, text_to_image, ks)


# ---- binary detection (anomaly) -----------------------------------------------------------------
def _binary_inputs(labels: ArrayLike, scores: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    y = _numpy(labels).reshape(-1)
    s = _numpy(scores).reshape(-1)
    if y.shape != s.shape:
        raise InputError(f"{name}: {y.size} labels but {s.size} scores")
    if y.size == 0:
        raise InputError(f"{name}: no samples")
    if not np.isin(y, (0.0, 1.0)).all():
        raise InputError(f"{name}: labels must be 0/1 (or boolean)")
    if not np.isfinite(s).all():
        raise InputError(f"{name}: scores contain NaN or infinity")
    return y, s


def binary_curve(labels: ArrayLike, scores: ArrayLike, name: str = "binary_curve",
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (false positives, true positives, threshold) at each distinct score, descending.

    Ties share one threshold: the same construction as scikit-learn's ``_binary_clf_curve``.
    """
    y, s = _binary_inputs(labels, scores, name)
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[last_of_run]
    fps = (last_of_run + 1) - tps
    return fps, tps, s[last_of_run]


def auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (trapezoidal, ties averaged), as ``sklearn.metrics.roc_auc_score``."""
    fps, tps, _ = binary_curve(labels, scores, "auroc")
    positives, negatives = tps[-1], fps[-1]
    if positives == 0 or negatives == 0:
        raise InputError("auroc: needs both positive and negative samples (only one class present)")
    fpr = np.r_[0.0, fps / negatives]
    tpr = np.r_[0.0, tps / positives]
    return float(np.trapezoid(tpr, fpr))


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Step-wise AP, sum over thresholds of (R_n - R_{n-1}) P_n, as ``average_precision_score``."""
    fps, tps, _ = binary_curve(labels, scores, "average_precision")
    if tps[-1] == 0:
        raise InputError("average_precision: no positive samples")
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def precision_recall_points(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, threshold) at each distinct score, highest threshold first."""
    fps, tps, thresholds = binary_curve(labels, scores, "precision_recall")
    if tps[-1] == 0:
        raise InputError("precision_recall: no positive samples")
    return tps / (tps + fps), tps / tps[-1], thresholds


def f1_max(labels: ArrayLike, scores: ArrayLike) -> float:
    """Best F1 over all thresholds (the anomaly papers' F1-max; anomalib's ``F1Max``)."""
    return f1_max_threshold(labels, scores)[0]


def f1_max_threshold(labels: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """(best F1, the score threshold reaching it: predict anomalous when ``score >= threshold``)."""
    precision, recall, thresholds = precision_recall_points(labels, scores)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])
