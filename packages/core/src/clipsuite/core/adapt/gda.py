"""GDA, "A Hard-to-Beat Baseline for Training-free CLIP-based Adaptation" (Wang et al., ICLR 2024).

Gaussian discriminant analysis on CLIP features with a shared, shrunk covariance:
  mu_c = class means, S = covariance of the class-centred features (N-1 denominator),
  P = D * pinv((N - 1) S + tr(S) I),
  W_c = P mu_c,  b_c = log pi_c - 1/2 mu_c^T P mu_c,
  logits = scale * f T^T + alpha (f W^T + b), alpha searched on validation.
Priors pi_c are the class frequencies of the training features (uniform for K-shot subsets).
"""

from __future__ import annotations

import torch

from clipsuite.core.adapt.heads import GDAHead
from clipsuite.core.errors import InputError

ALPHAS = [10.0 ** (e / 2) for e in range(-8, 5)]  # 1e-4 .. 100, half-decade steps


@torch.no_grad()
def fit_gaussian(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(W ``[C, D]``, b ``[C]``) of the shrinkage-covariance linear discriminant (in float64)."""
    x = features.double()
    counts = torch.bincount(labels, minlength=n_classes)
    if int(counts.min()) == 0:
        missing = int((counts == 0).nonzero()[0])
        raise InputError(f"GDA: class {missing} has no training features")
    means = torch.stack([x[labels == c].mean(dim=0) for c in range(n_classes)])
    centred = x - means[labels]
    n, dim = centred.shape
    cov = torch.cov(centred.T)
    precision = dim * torch.linalg.pinv((n - 1) * cov + torch.trace(cov) * torch.eye(dim, dtype=x.dtype))
    weight = means @ precision  # P is symmetric: (P mu_c)^T = mu_c^T P
    priors = counts.double() / counts.sum()
    bias = torch.log(priors) - 0.5 * (weight * means).sum(dim=-1)
    return weight.float(), bias.float()


def build(zero_shot: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, n_classes: int,
          scale: float) -> GDAHead:
    weight, bias = fit_gaussian(features, labels, n_classes)
    return GDAHead(zero_shot, weight, bias, alpha=1.0, scale=scale)


@torch.no_grad()
def search(head: GDAHead, val_features: torch.Tensor, val_labels: torch.Tensor) -> tuple[float, float]:
    """Choose alpha on validation accuracy (ties keep the smaller alpha); returns (alpha, accuracy)."""
    features = val_features.to(head.weight)
    val_labels = val_labels.to(head.weight.device)
    clip_logits = head.scale * features @ head.zero_shot.T
    gda_logits = features @ head.weight.T + head.bias
    best = (head.alpha, -1.0)
    for alpha in ALPHAS:
        accuracy = float(((clip_logits + alpha * gda_logits).argmax(-1) == val_labels).float().mean())
        if accuracy > best[1]:
            best = (alpha, accuracy)
    head.alpha = best[0]
    return best
