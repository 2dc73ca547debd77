"""RS-M-CLIP's self-distillation term: a DINO-style objective between the image tower (student) and an
exponential moving average of it (teacher), over global and local crops of each training image.

Pieces, each small and pure torch:

* ``random_resized_crops``: batched random crops (area ``scale``, aspect ``ratio``, horizontal flip)
  resampled to a given size with one ``grid_sample`` call, so crops run on the device.
* ``ProjectorHead``: a 3-layer MLP, L2-normalised bottleneck, then cosine similarities to
  ``out_dim`` learned prototypes (DINO's head with its last layer weight-normalised, gain fixed at 1).
* ``dino_loss``: cross-entropy between the centred, sharpened teacher distribution of each global
  crop and the student distribution of every other crop.
* ``EmaTeacher``: the teacher's weights kept as buffers (so the Trainer's checkpoint saves and
  restores them) and averaged after each step by the core's ``EMA``.
* ``teacher_momentum`` / ``teacher_temperature``: DINO's schedules of the teacher's EMA decay (cosine
  to 1) and temperature (linear warm-up).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from clipsuite.core.train import EMA
from clipsuite.remote.distributed import all_mean
from clipsuite.remote.methods.crop_scales import GLOBAL_SCALE

RATIO = (3 / 4, 4 / 3)


def random_resized_crops(images: torch.Tensor, size: int, scale: tuple[float, float] = GLOBAL_SCALE,
                         ratio: tuple[float, float] = RATIO, flip: bool = True,
                         generator: torch.Generator | None = None, part: tuple[int, int] = (0, 1),
                         groups: int = 1) -> torch.Tensor:
    """One random crop per image of ``images`` ``[B, C, H, W]`` -> ``[B, C, size, size]`` (bilinear).

    Area fraction ``~ U(scale)``, log-aspect ``~ U(log ratio)``, sides clamped to the image, the centre
    uniform over the places where the crop fits; half the crops mirrored when ``flip``.

    ``part=(rank, world)``: ``images`` is process ``rank``'s share of a global batch split evenly over
    ``world`` processes (in ``groups`` blocks, e.g. the repeats of local crops). The crops are drawn for
    the global batch and this share taken, so several processes crop as one process on the whole batch."""
    batch, device = images.shape[0], images.device
    rank, world = part
    per = batch // groups
    # positions of this process's rows in the global draw: block g, process rank, row i
    rows = (torch.arange(groups)[:, None] * per * world + rank * per + torch.arange(per)[None, :]).reshape(-1)
    total = batch * world

    def rand() -> torch.Tensor:
        return torch.rand(total, generator=generator)[rows]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * rand()

    area = uniform(*scale)
    aspect = torch.exp(uniform(float(torch.log(torch.tensor(ratio[0]))), float(torch.log(torch.tensor(ratio[1])))))
    width = torch.sqrt(area * aspect).clamp(max=1.0)   # fractions of the image side
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (rand() * 2 - 1) * (1 - width)  # centre in [-1, 1] coordinates
    cy = (rand() * 2 - 1) * (1 - height)
    sign = torch.where(rand() < 0.5, -1.0, 1.0) if flip else torch.ones(batch)
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = width * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = height, cy
    grid = F.affine_grid(theta.to(device, images.dtype), [batch, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class ProjectorHead(nn.Module):
    """``[B, in_dim]`` -> ``[B, out_dim]`` prototype scores: MLP (3 layers, GELU) -> L2-normalised
    ``bottleneck`` -> cosine to ``out_dim`` prototypes."""

    def __init__(self, in_dim: int, hidden: int = 512, bottleneck: int = 128, out_dim: int = 1024) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck))
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        nn.init.trunc_normal_(self.prototypes, std=0.02)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(features), dim=-1)
        return z @ F.normalize(self.prototypes, dim=-1).T


def dino_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], center: torch.Tensor,
              student_temp: float = 0.1, teacher_temp: float = 0.04) -> torch.Tensor:
    """Mean over (teacher view ``t``, student view ``s != t``) of ``H(softmax((teacher_t - center) /
    teacher_temp), softmax(student_s / student_temp))``. Teacher views are the first student views
    (the global crops), so the pairs where a view would meet itself are skipped."""
    targets = [F.softmax((t.detach().float() - center) / teacher_temp, dim=-1) for t in teacher]
    log_probs = [F.log_softmax(s.float() / student_temp, dim=-1) for s in student]
    total, terms = torch.zeros((), device=center.device), 0
    for t, target in enumerate(targets):
        for s, log_p in enumerate(log_probs):
            if s != t:
                total = total + (-target * log_p).sum(dim=-1).mean()
                terms += 1
    return total / max(1, terms)


def teacher_momentum(step: int, total_steps: int, start: float, end: float = 1.0) -> float:
    """DINO's teacher EMA decay: a cosine from ``start`` at step 0 to ``end`` at ``total_steps``, so the
    teacher follows the student early and freezes toward the end."""
    progress = min(1.0, step / max(1, total_steps))
    return end - (end - start) * (1 + math.cos(math.pi * progress)) / 2


def teacher_temperature(step: int, warmup_steps: int, start: float, end: float) -> float:
    """DINO's teacher temperature: linear from ``start`` to ``end`` over ``warmup_steps``, then ``end``
    (a softer teacher at first keeps the early, untrained outputs from collapsing onto one prototype)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return end
    return start + (end - start) * step / warmup_steps


@torch.no_grad()
def update_center(center: torch.Tensor, teacher: Sequence[torch.Tensor], momentum: float = 0.9) -> None:
    """DINO's centring: ``center = m * center + (1 - m) * mean teacher output`` (in place). Across
    processes the mean is over every process's teacher outputs (all-reduced, as DINO does), so the
    centre stays one and the same everywhere."""
    batch_mean = all_mean(torch.cat([t.float() for t in teacher]).mean(dim=0))
    center.mul_(momentum).add_(batch_mean, alpha=1 - momentum)


def _buffer_name(name: str) -> str:
    return name.replace(".", "__")


class EmaTeacher(nn.Module):
    """An averaged copy of ``student``'s parameters, run through ``student``'s own code.

    The averaged weights are registered buffers: they travel with ``.to(device)`` and the Trainer's
    checkpoint stores and restores them, so a resumed run continues with the same teacher. The
    average itself is the core's ``EMA``, whose shadow tensors are these buffers.
    """

    def __init__(self, student: nn.Module, decay: float) -> None:
        super().__init__()
        self._student = [student]  # in a list: the student is the trained model's, not a child of this
        self.decay = float(decay)
        self.names = [name for name, _ in student.named_parameters()]
        for name, param in student.named_parameters():
            self.register_buffer(_buffer_name(name), param.detach().float().clone())
        self._ema: EMA | None = None

    def weights(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, _buffer_name(name)) for name in self.names}

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        """``student(*args)`` with the teacher's weights, without gradient."""
        student = self._student[0]
        weights = {name: tensor.to(dtype) for (name, tensor), dtype in
                   zip(self.weights().items(), (p.dtype for p in student.parameters()))}
        with torch.no_grad():
            return functional_call(student, weights, args)

    @torch.no_grad()
    def update(self, decay: float | None = None) -> None:
        """One EMA step toward the student's current weights (after each optimizer step); ``decay``:
        this step's (a schedule's), else the one given at construction."""
        weights = self.weights()
        first = self.names[0]
        if self._ema is None or self._ema.shadow[first] is not weights[first]:  # (re)bind after .to() or a restore
            self._ema = EMA(dict(self._student[0].named_parameters()), self.decay)
            self._ema.shadow = weights
        self._ema.decay = self.decay if decay is None else float(decay)
        self._ema.update()

    def state_summary(self) -> Mapping[str, float]:
        """Distance between teacher and student weights (for logs)."""
        student = dict(self._student[0].named_parameters())
        squared = sum(float((w - student[n].detach().float()).pow(2).sum()) for n, w in self.weights().items())
        return {"teacher_distance": squared ** 0.5}
