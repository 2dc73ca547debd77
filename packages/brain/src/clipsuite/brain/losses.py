"""MindEye's contrastive losses for brain -> CLIP decoders, and their schedule.

- BiMixCo: voxels of half the batch (on average) are mixed with another sample's,
  ``x_i' = b_i x_i + (1 - b_i) x_perm(i)`` with ``b_i ~ Beta(0.15, 0.15)``; the InfoNCE target of row
  i is the same mixture of one-hot targets (``b_i`` on i, ``1 - b_i`` on perm(i)), in both directions
  (brain -> CLIP over rows, CLIP -> brain over columns). Temperature 0.006.
- SoftCLIP: soft targets from the CLIP-CLIP similarities of the batch, ``softmax(t t^T / T)``, against
  ``log_softmax(p t^T / T)`` in both directions; MindEye anneals T from 0.004 to 0.0075 (cosine).
- Schedule (MindEye): BiMixCo for the first ``int(0.33 * epochs)`` epochs, SoftCLIP after.

All inputs are L2-normalised here, and the losses are computed in float32 whatever the autocast.
One deliberate difference from the reference code: when ``perm(i) == i`` its target row gets
``b_i + (1 - b_i) = 1`` on the diagonal (the mixture of a sample with itself), where MindEye's
assignment overwrites it with ``1 - b_i``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clipsuite.core.errors import InputError


@dataclass(frozen=True)
class Mix:
    """How a batch was mixed: ``perm`` (partner of each row) and ``betas`` (1 where unmixed)."""

    perm: torch.Tensor
    betas: torch.Tensor


def mixco(voxels: torch.Tensor, beta: float = 0.15, s_thresh: float = 0.5) -> tuple[torch.Tensor, Mix]:
    """MixCo on voxels: a random ``s_thresh`` share of rows mixed with a random partner (global RNG,
    which the core Trainer saves and restores, so a resumed run draws the same mixes)."""
    n = voxels.shape[0]
    perm = torch.randperm(n).to(voxels.device)
    betas = torch.distributions.Beta(beta, beta).sample((n,)).to(voxels.device, torch.float32)
    select = (torch.rand(n) <= s_thresh).to(voxels.device)
    betas = torch.where(select, betas, torch.ones_like(betas))
    shape = (-1,) + (1,) * (voxels.ndim - 1)
    b = betas.to(voxels.dtype).reshape(shape)
    return voxels * b + voxels[perm] * (1 - b), Mix(perm, betas)


def mix_targets(mix: Mix) -> torch.Tensor:
    """The (n, n) soft target matrix of a mix: ``b_i`` at (i, i) plus ``1 - b_i`` at (i, perm(i))."""
    n = len(mix.perm)
    rows = torch.arange(n, device=mix.perm.device)
    probs = torch.diag(mix.betas.float())
    return probs.index_put((rows, mix.perm), 1 - mix.betas.float(), accumulate=True)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float().flatten(1), dim=-1)


def mixco_nce(preds: torch.Tensor, targets: torch.Tensor, temperature: float = 0.006, mix: Mix | None = None,
              bidirectional: bool = True) -> torch.Tensor:
    """InfoNCE between decoded embeddings and CLIP targets; soft targets when the voxels were mixed."""
    logits = _unit(preds) @ _unit(targets).T / temperature
    probs = mix_targets(mix) if mix is not None else torch.eye(len(logits), device=logits.device)
    loss = -(logits.log_softmax(-1) * probs).sum(-1).mean()
    if bidirectional:
        loss = (loss - (logits.T.log_softmax(-1) * probs.T).sum(-1).mean()) / 2
    return loss


def soft_clip_loss(preds: torch.Tensor, targets: torch.Tensor, temperature: float = 0.0075) -> torch.Tensor:
    """MindEye's SoftCLIP: cross-entropy against ``softmax(t t^T / T)``, both directions."""
    p, t = _unit(preds), _unit(targets)
    soft = (t @ t.T / temperature).softmax(-1)
    logits = p @ t.T / temperature
    forward = -(logits.log_softmax(-1) * soft).sum(-1).mean()
    backward = -(logits.T.log_softmax(-1) * soft).sum(-1).mean()
    return (forward + backward) / 2


def cosine_anneal(start: float, end: float, steps: int) -> list[float]:
    """``steps`` values from ``start`` to ``end`` along half a cosine (MindEye's ``cosine_anneal``)."""
    if steps < 1:
        return []
    if steps == 1:
        return [start]
    return [end + (start - end) / 2 * (1 + math.cos(math.pi * i / (steps - 1))) for i in range(steps)]


@dataclass(frozen=True)
class LossSchedule:
    """Which loss and temperature each epoch uses."""

    epochs: int
    mixup_fraction: float = 0.33
    mix_temperature: float = 0.006
    soft_temperature: tuple[float, float] = (0.004, 0.0075)

    def __post_init__(self) -> None:
        if self.epochs < 1 or not 0.0 <= self.mixup_fraction <= 1.0:
            raise InputError(f"loss schedule: epochs >= 1 and mixup fraction in [0, 1] needed "
                             f"(got {self.epochs}, {self.mixup_fraction})")
        if self.mix_temperature <= 0 or min(self.soft_temperature) <= 0:
            raise InputError("loss schedule: temperatures must be > 0")

    @property
    def mix_epochs(self) -> int:
        return int(self.mixup_fraction * self.epochs)

    def at(self, epoch: int) -> tuple[str, float]:
        """``("bimixco", T)`` or ``("softclip", T)`` for ``epoch`` (0-based; past the end: the last)."""
        if epoch < self.mix_epochs:
            return "bimixco", self.mix_temperature
        temps = cosine_anneal(*self.soft_temperature, self.epochs - self.mix_epochs)
        return "softclip", temps[min(epoch - self.mix_epochs, len(temps) - 1)]
