"""The contract between a training task and the ``Trainer``.

A task is any object that matches ``TrainTask``: a ``module`` (its parameters with
``requires_grad`` are trained) and ``loss(batch)``. The Trainer runs ``loss`` inside the forward of
the module that accelerate prepared (``TaskStep``), so every use of the trained parameters goes
through the DDP/FSDP wrapper and its gradient hooks, whichever sub-module the task calls.

Optional hooks, each its own small Protocol so the Trainer can ask ``isinstance(task, Evaluates)``:

- ``collate(items) -> batch``: how samples of a Dataset become a batch;
- ``evaluate() -> {name: value}``: each epoch end, no grad (main process; all processes under FSDP);
- ``config() -> dict``: stored as JSON with the weights;
- ``after_step()``: after each optimizer step, no grad (clamp a logit scale, update a teacher ...);
- ``start_schedule(steps)``: once per ``fit`` before the first step (a resumed run too), the optimizer steps
  the whole run takes and each epoch holds (``RunSteps``, as the Trainer counts them: per-process batches,
  grouped by accumulation), for a task's own schedules (DINO's teacher momentum, MindEye's loss by epoch);
- ``frozen_modules() -> [model, ...]``: frozen models the task uses but does not train (a CLIP
  model encoding images for a prompt learner). The Trainer moves each with ``.to(device)`` next to
  the trained module, so a model loaded on the CPU trains on a visible GPU.

Batches are moved to the device too (tensors inside dicts, lists and tuples).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

import torch
from torch import nn

from clipsuite.core.errors import ClipsuiteError

LossOutput = torch.Tensor | Mapping[str, torch.Tensor]


@runtime_checkable
class TrainTask(Protocol):
    """What the Trainer trains: ``module`` and ``loss(batch)`` (a scalar tensor, or a mapping holding
    ``"loss"`` whose other one-element tensors are logged beside it)."""

    # read-only to the Trainer, so a task may hold any nn.Module subclass (a mutable protocol
    # attribute would be invariant and refuse them)
    @property
    def module(self) -> nn.Module: ...

    def loss(self, batch: Any) -> LossOutput: ...


@runtime_checkable
class Placeable(Protocol):
    """Something the Trainer can move to its device: an ``nn.Module``, a ``ClipModel``."""

    def to(self, device: torch.device) -> Any: ...


@runtime_checkable
class Collates(Protocol):
    def collate(self, items: list[Any]) -> Any: ...


@runtime_checkable
class Evaluates(Protocol):
    def evaluate(self) -> Mapping[str, float]: ...


@runtime_checkable
class Configured(Protocol):
    def config(self) -> Mapping[str, Any]: ...


@runtime_checkable
class AfterStep(Protocol):
    def after_step(self) -> None: ...


@dataclass(frozen=True)
class RunSteps:
    """The optimizer steps of a whole run (``total``) and of one epoch (``per_epoch``), as the Trainer counts
    them; a task never derives them again from the batch size, the processes and the accumulation."""

    total: int
    per_epoch: int

    @property
    def epochs(self) -> int:
        """Epochs the run reaches (a ``max_steps`` run ends inside its last one)."""
        return max(1, math.ceil(self.total / max(1, self.per_epoch)))


@runtime_checkable
class Scheduled(Protocol):
    def start_schedule(self, steps: RunSteps) -> None: ...


@runtime_checkable
class HoldsFrozen(Protocol):
    def frozen_modules(self) -> Sequence[Placeable]: ...


def check_task(task: object) -> TrainTask:
    """The task itself, or one clear error naming what it lacks."""
    if not isinstance(getattr(task, "module", None), nn.Module):
        raise ClipsuiteError(f"{type(task).__name__}: a training task needs a 'module' (torch.nn.Module)")
    if not callable(getattr(task, "loss", None)):
        raise ClipsuiteError(f"{type(task).__name__}: a training task needs a 'loss(batch)' method")
    return cast(TrainTask, task)


def split_loss(out: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(loss, logged parts)`` from what ``task.loss`` returned."""
    if isinstance(out, torch.Tensor):
        return out, {"loss": out}
    if isinstance(out, Mapping) and isinstance(out.get("loss"), torch.Tensor):
        parts = {k: v for k, v in out.items() if isinstance(v, torch.Tensor) and v.numel() == 1}
        return out["loss"], parts
    raise ClipsuiteError("task.loss(batch) must return a tensor or a dict holding 'loss'")


class TaskStep(nn.Module):
    """The module accelerate prepares: ``forward(batch)`` is ``task.loss(batch)``.

    It owns the task's module as a child, so DDP registers its gradient hooks on exactly the trained
    parameters and FSDP shards them; the task keeps calling its own module as it likes.
    """

    def __init__(self, task: TrainTask) -> None:
        super().__init__()
        self.trained = task.module
        self._loss = task.loss  # a bound method, not a module: not part of the state

    def forward(self, batch: Any) -> LossOutput:
        return self._loss(batch)
