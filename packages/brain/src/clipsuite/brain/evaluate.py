"""The field's decoding and encoding metrics, as the papers define them.

- Zero-shot N-way category decoding (GOD / BrainCLIP): the decoded embedding of a test sample is
  compared (cosine) with one candidate embedding per category; top-1 / top-5 accuracy (GOD: 50 unseen
  categories, chance 2% / 10%).
- 300-way retrieval (MindEye): draw 300 test samples, cosine similarities between decoded brain
  embeddings and the true CLIP image embeddings; image retrieval = fraction of brain rows whose
  best image is their own, brain retrieval = the same from the image side; mean over 30 draws.
- Pairwise identification: for each sample, the fraction of other samples whose true features
  correlate less with its prediction than its own true features do (Pearson), averaged.
- Encoding: per-voxel Pearson r on held-out stimuli; noise ceiling from repeats (NSD: ncsnr, and
  NC = 100 ncsnr^2 / (ncsnr^2 + 1/n) percent of explainable variance for averages of n trials).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from clipsuite.core.errors import InputError
from clipsuite.core.metrics import topk_accuracy


def _unit(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).double()
    return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)


def category_decoding(decoded: np.ndarray, candidates: np.ndarray, labels: Sequence[int],
                      topk: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy of choosing each sample's category among ``candidates`` (one row per category)."""
    if len(decoded) != len(labels):
        raise InputError(f"{len(decoded)} decoded samples for {len(labels)} labels")
    logits = _unit(decoded) @ _unit(candidates).T
    ks = [k for k in topk if k <= len(candidates)]
    scores = topk_accuracy(logits, torch.as_tensor(np.asarray(labels)), ks)
    out = {f"top{k}": float(scores[k]) for k in ks}
    out["n_way"] = float(len(candidates))
    return out


def retrieval(decoded: np.ndarray, targets: np.ndarray, n_way: int = 300, draws: int = 30,
              seed: int = 0) -> dict[str, float]:
    """MindEye's retrieval: top-1 in both directions among ``n_way`` random test samples, mean of draws.

    With fewer samples than ``n_way`` every draw uses all of them (and ``n_way`` reports that size).
    """
    if len(decoded) != len(targets):
        raise InputError(f"{len(decoded)} decoded samples for {len(targets)} targets")
    n = len(decoded)
    size = min(n_way, n)
    a, b = _unit(decoded), _unit(targets)
    rng = np.random.default_rng(seed)
    forward, backward = [], []
    for _ in range(draws if size < n else 1):  # one draw when it is the whole set: all draws are equal
        pick = torch.as_tensor(rng.permutation(n)[:size])
        sim = a[pick] @ b[pick].T
        truth = torch.arange(size)
        forward.append((sim.argmax(1) == truth).double().mean().item())
        backward.append((sim.argmax(0) == truth).double().mean().item())
    return {"image_retrieval": float(np.mean(forward)), "brain_retrieval": float(np.mean(backward)),
            "n_way": float(size), "draws": float(len(forward))}


def pairwise_identification(decoded: np.ndarray, targets: np.ndarray) -> float:
    """Mean over samples of the fraction of other samples beaten by the true one (Pearson r)."""
    p = torch.as_tensor(np.asarray(decoded)).double()
    t = torch.as_tensor(np.asarray(targets)).double()
    if p.shape != t.shape or len(p) < 2:
        raise InputError(f"pairwise identification needs matching shapes with 2+ samples, got "
                         f"{tuple(p.shape)} and {tuple(t.shape)}")
    p = _unit(p - p.mean(1, keepdim=True))
    t = _unit(t - t.mean(1, keepdim=True))
    corr = p @ t.T                                   # corr[i, j] = r(prediction i, truth j)
    own = corr.diagonal()[:, None]
    wins = (own > corr).double().sum(1)              # the diagonal never counts (own > own is False)
    return float((wins / (len(p) - 1)).mean())


def pearson_columns(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> np.ndarray:
    """Pearson r of each column (voxel) between predictions and held-out responses."""
    p = torch.as_tensor(np.asarray(pred) if not isinstance(pred, torch.Tensor) else pred).double()
    t = torch.as_tensor(np.asarray(true) if not isinstance(true, torch.Tensor) else true).double()
    if p.shape != t.shape:
        raise InputError(f"predictions {tuple(p.shape)} and responses {tuple(t.shape)} differ in shape")
    p = p - p.mean(0)
    t = t - t.mean(0)
    denom = (p.norm(dim=0) * t.norm(dim=0))
    r = (p * t).sum(0) / denom.clamp_min(1e-300)
    r[denom == 0] = 0.0
    return r.numpy()


def ncsnr(responses: np.ndarray, stimulus: np.ndarray) -> np.ndarray:
    """NSD's noise-ceiling SNR per voxel from z-scored single trials of stimuli shown 2+ times.

    sigma_noise^2 = mean over stimuli of the across-repeat variance (ddof 1);
    ncsnr = sqrt(max(0, 1 - sigma_noise^2) / sigma_noise^2).
    """
    ids, counts = np.unique(stimulus, return_counts=True)
    repeated = ids[counts >= 2]
    if len(repeated) == 0:
        raise InputError("a noise ceiling needs stimuli shown at least twice (none are)")
    variances = [responses[stimulus == sid].var(0, ddof=1) for sid in repeated]
    noise = np.mean(variances, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(np.clip(1 - noise, 0, None) / noise)
    return np.nan_to_num(out, nan=0.0, posinf=0.0)


def noise_ceiling(snr: np.ndarray, n_trials: int) -> np.ndarray:
    """Percent of variance explainable for responses averaged over ``n_trials``: 100 s^2 / (s^2 + 1/n)."""
    s2 = np.asarray(snr, dtype=np.float64) ** 2
    return 100.0 * s2 / (s2 + 1.0 / n_trials)


def normalised_r(r: np.ndarray, ceiling_percent: np.ndarray) -> np.ndarray:
    """r divided by the noise ceiling expressed as a correlation (sqrt of NC / 100); NaN where NC is 0."""
    limit = np.sqrt(np.asarray(ceiling_percent, dtype=np.float64) / 100.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(limit > 0, r / limit, np.nan)
