"""Tip-Adapter (training-free) and Tip-Adapter-F (cache keys fine-tuned), with the alpha/beta search.

Cache keys: normalised training features, averaged over the augmented views; values: one-hot labels.
alpha weighs the cache against zero-shot, beta sharpens the affinities; both are chosen on the
validation features over a grid (beta in [0.1, 7], alpha in [0.1, 3], as the paper searches).
"""

from __future__ import annotations

import torch

from clipsuite.core.adapt.feature_cache import CachedFeatures
from clipsuite.core.adapt.heads import TipAdapterHead

BETA_RANGE = (0.1, 7.0)
ALPHA_RANGE = (0.1, 3.0)


def build(zero_shot: torch.Tensor, train: CachedFeatures, n_classes: int, scale: float, alpha: float = 1.0,
          beta: float = 1.0, train_keys: bool = False) -> TipAdapterHead:
    """The cache model; ``zero_shot`` is ``[C, D]`` (normalised class embeddings)."""
    values = torch.nn.functional.one_hot(train.labels, n_classes).float()
    return TipAdapterHead(zero_shot, train.mean, values, alpha, beta, scale, train_keys)


@torch.no_grad()
def search(head: TipAdapterHead, val_features: torch.Tensor, val_labels: torch.Tensor,
           steps: tuple[int, int] = (20, 10)) -> tuple[float, float, float]:
    """Set ``head.alpha``/``head.beta`` to the grid point with the best validation accuracy.

    Returns (alpha, beta, accuracy); ties keep the earlier (smaller) values.
    """
    clip_logits, affinity = head.parts(val_features)
    betas = torch.linspace(*BETA_RANGE, steps[0]).tolist()
    alphas = torch.linspace(*ALPHA_RANGE, steps[1]).tolist()
    best = (head.alpha, head.beta, -1.0)
    labels = val_labels.to(clip_logits.device)
    for beta in betas:
        cache = torch.exp(-beta * (1 - affinity)) @ head.values
        for alpha in alphas:
            accuracy = float(((clip_logits + alpha * cache).argmax(-1) == labels).float().mean())
            if accuracy > best[2]:
                best = (alpha, beta, accuracy)
    head.alpha, head.beta = best[0], best[1]
    return best
