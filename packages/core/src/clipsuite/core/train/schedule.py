"""Learning-rate schedules as plain functions of the optimizer step (JSON-serialisable state)."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def lr_factor(step: int, total_steps: int, warmup_steps: int = 0, kind: str = "cosine") -> float:
    """Multiplier of the base lr used at optimizer step ``step`` (0-based).

    Warm-up rises linearly to 1 over ``warmup_steps`` (``(step + 1) / warmup``, as open_clip does);
    then ``cosine`` decays to 0 at ``total_steps`` and ``constant`` stays at 1.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                    kind: str = "cosine") -> LambdaLR:
    # LambdaLR's state_dict holds only numbers (the lambda itself is not saved), so it fits JSON.
    return LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, kind))
