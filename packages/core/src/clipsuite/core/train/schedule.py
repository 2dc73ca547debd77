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


def follow_schedule(scheduler: LambdaLR) -> None:
    """Set every group's lr to the schedule's value at the scheduler's current step.

    A restored optimizer holds the lr its saved run was about to use (0 at a finished cosine's end);
    a resumed run that trains longer has another schedule, which decides the lr from its first step on.
    """
    step = scheduler.last_epoch
    lrs = [base * factor(step) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    scheduler._last_lr = lrs  # what get_last_lr() reports until the next step
