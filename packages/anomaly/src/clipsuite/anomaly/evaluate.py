"""Metrics as the anomaly papers compute them, and the per-category evaluation protocol.

Image level: AUROC, AP, F1-max (``clipsuite.core.metrics``, scikit-learn's definitions). Pixel level:
AUROC over all pixels and AUPRO (per-region overlap integrated over FPR 0..0.3, normalised by 0.3;
regions are 4-connected components of each ground-truth mask). Maps are compared at the method's
input resolution with masks resized (nearest) to it, the AnomalyCLIP/AdaptCLIP protocol. Pixel metrics
are skipped, with a note, when a category has no masks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from clipsuite.anomaly.data import Category, Sample, load_mask
from clipsuite.anomaly.methods.base import AnomalyResult
from clipsuite.anomaly.pipeline import Scored
from clipsuite.core import metrics
from clipsuite.core.skipping import Skipped

IMAGE_METRICS = ("image_auroc", "image_ap", "image_f1_max")
PIXEL_METRICS = ("pixel_auroc", "pixel_aupro")


def aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Area under the per-region-overlap curve up to ``fpr_limit``, divided by ``fpr_limit``.

    PRO(t) is the mean over all connected ground-truth regions of the fraction of the region scoring
    >= t, so it equals a cumulative sum with weight 1 / (n_regions * region_size) on each anomalous
    pixel: one sort over all pixels gives the exact curve (ties form one threshold).
    """
    masks = np.asarray(masks, dtype=bool)
    maps = np.asarray(maps, dtype=np.float64)
    weights = np.zeros(masks.shape, dtype=np.float64)
    n_regions = 0
    region_weights = []
    for i in range(masks.shape[0]):
        labelled, count = ndimage.label(masks[i])
        if count:
            sizes = np.bincount(labelled.ravel())
            region_weights.append((i, labelled, sizes))
            n_regions += count
    if n_regions == 0:
        raise ValueError("aupro: no anomalous regions")
    negatives = ~masks
    if not negatives.any():
        raise ValueError("aupro: no normal pixels")
    for i, labelled, sizes in region_weights:
        inside = labelled > 0
        weights[i][inside] = 1.0 / (n_regions * sizes[labelled[inside]])
    order = np.argsort(-maps.ravel(), kind="mergesort")
    scores = maps.ravel()[order]
    fpr = np.cumsum(negatives.ravel()[order]) / negatives.sum()
    pro = np.cumsum(weights.ravel()[order])
    last_of_tie = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
    fpr, pro = np.r_[0.0, fpr[last_of_tie]], np.r_[0.0, pro[last_of_tie]]
    keep = fpr <= fpr_limit
    x, y = fpr[keep], pro[keep]
    if x[-1] < fpr_limit and keep.sum() < fpr.size:  # close the curve exactly at the limit
        j = int(keep.sum())
        t = (fpr_limit - fpr[j - 1]) / (fpr[j] - fpr[j - 1])
        x, y = np.r_[x, fpr_limit], np.r_[y, pro[j - 1] + t * (pro[j] - pro[j - 1])]
    return float(np.trapezoid(y, x) / fpr_limit)


def image_metrics(labels: Sequence[int], scores: Sequence[float] | torch.Tensor | np.ndarray) -> dict[str, float]:
    return {"image_auroc": metrics.auroc(labels, scores), "image_ap": metrics.average_precision(labels, scores),
            "image_f1_max": metrics.f1_max(labels, scores)}


def pixel_metrics(masks: np.ndarray, maps: np.ndarray) -> dict[str, float]:
    return {"pixel_auroc": metrics.auroc(masks.reshape(-1), maps.reshape(-1)), "pixel_aupro": aupro(masks, maps)}


def masks_at(samples: Sequence[Sample], image_sizes: Sequence[tuple[int, int]], size: tuple[int, int]) -> np.ndarray:
    """Ground truth ``[N, h, w]`` at the map resolution; normal images get an empty mask."""
    out = np.zeros((len(samples), *size), dtype=bool)
    for i, (sample, image_size) in enumerate(zip(samples, image_sizes)):
        if sample.label == 1 and sample.mask is not None:
            mask = torch.from_numpy(load_mask(sample.mask, image_size)).float()[None, None]
            out[i] = F.interpolate(mask, size=size, mode="nearest")[0, 0].numpy() > 0.5
    return out


@dataclass
class CategoryResult:
    name: str
    metrics: dict[str, float]
    n_images: int
    notes: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # unreadable images left out of the metrics


def score_category(category: Category, result: AnomalyResult, image_sizes: Sequence[tuple[int, int]],
                   ) -> CategoryResult:
    labels = [s.label for s in category.test]
    notes: list[str] = []
    values: dict[str, float] = {}
    if 0 < sum(labels) < len(labels):
        values.update(image_metrics(labels, result.scores.numpy()))
    else:
        notes.append(f"{category.name}: image metrics skipped (needs both normal and anomalous test images)")
    if category.has_masks and sum(labels) > 0:
        masks = masks_at(category.test, image_sizes, (result.maps.shape[-2], result.maps.shape[-1]))
        values.update(pixel_metrics(masks, result.maps.numpy()))
    else:
        notes.append(f"{category.name}: pixel metrics skipped (no ground-truth masks)")
    return CategoryResult(category.name, values, len(labels), notes)


def mean_row(results: Sequence[CategoryResult]) -> dict[str, float]:
    """Mean over categories of each metric that every category has (the papers' 'mean' row)."""
    names = [m for m in IMAGE_METRICS + PIXEL_METRICS if results and all(m in r.metrics for r in results)]
    return {m: float(np.mean([r.metrics[m] for r in results])) for m in names}


def evaluate_categories(categories: Sequence[Category],
                        run: Callable[[Category], tuple[AnomalyResult, list[tuple[int, int]]] | Scored],
                        ) -> tuple[list[CategoryResult], dict[str, float]]:
    """``run(category)`` -> (result over ``category.test`` in order, original image sizes), or a
    ``Scored`` (``Detector.score_category``) whose unreadable images are left out and noted."""
    results = []
    for category in categories:
        out = run(category)
        if isinstance(out, Scored):
            scored = replace(category, test=[category.test[i] for i in out.kept])
            result = score_category(scored, out.result.cpu(), out.sizes)
            result.skipped = list(out.skipped)
            if out.skipped:
                result.notes.insert(0, f"{category.name}: skipped {len(out.skipped)} unreadable image(s): "
                                       + "; ".join(s.reason for s in out.skipped))
        else:
            result = score_category(category, out[0].cpu(), out[1])
        results.append(result)
    return results, mean_row(results)
