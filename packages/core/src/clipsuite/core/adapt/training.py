"""Training of learned prompts and adapters: one task object per method, run by the core Trainer.

A task (``clipsuite.core.train.TrainTask``) is ``module`` (only the learned parameters require
grad) plus ``loss(batch)``; the CLIP model is frozen, held outside the module and declared with
``frozen_modules()``, so the Trainer places it beside the learned module (a model loaded on the CPU
trains on a visible GPU). Batches are dicts holding either cached ``features`` or ``pixels`` (then
encoded by the frozen image tower on the fly) and ``label``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from clipsuite.core.models import ClipModel

if TYPE_CHECKING:
    from clipsuite.core.train.task import TrainTask


@dataclass
class FitSettings:
    """What a learner's training needs; method defaults are filled in by the registry."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    optimizer: str = "sgd"
    weight_decay: float = 5e-4
    warmup_steps: int = 0
    max_steps: int | None = None
    seed: int = 0
    output_dir: Path | None = None  # None: a temporary folder, removed afterwards
    progress: bool = False
    precision: str = "auto"  # clipsuite.core.precision's names (auto: fp32 on the CPU, amp_bf16 on a GPU)
    extra: dict[str, Any] = field(default_factory=dict)


def freeze(clip: ClipModel) -> None:
    """Adaptation never trains the backbone: no gradients for any CLIP weight."""
    clip.model.requires_grad_(False)
    clip.model.eval()


def image_features(clip: ClipModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cached features when the batch has them, else the frozen image tower on the batch's pixels."""
    if "features" in batch:
        return batch["features"].to(clip.device).float()
    return clip.encode_image_tensor(batch["pixels"])


class ClassificationTask:
    """Cross-entropy of ``module(features)`` against the labels; ``extra_loss`` adds a method's term."""

    def __init__(self, clip: ClipModel, module: nn.Module,
                 extra_loss: Callable[[], dict[str, torch.Tensor]] | None = None,
                 uses_pixels: bool = False) -> None:
        self.clip = clip
        self.module = module
        self.extra_loss = extra_loss
        self.uses_pixels = uses_pixels

    def frozen_modules(self) -> Sequence[ClipModel]:
        return [self.clip]

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = batch["pixels"] if self.uses_pixels else image_features(self.clip, batch)
        logits = self.module(inputs)
        labels = batch["label"].to(logits.device)
        ce = nn.functional.cross_entropy(logits, labels)
        out = {"ce": ce, "loss": ce}
        if self.extra_loss is not None:
            terms = self.extra_loss()
            out.update(terms)
            out["loss"] = ce + sum(terms.values())
        return out

    def config(self) -> dict[str, Any]:
        return {"module": type(self.module).__name__}


def fit(task: TrainTask, dataset: Dataset, settings: FitSettings) -> None:
    """Train ``task.module`` in place with the core Trainer (the run folder is temporary by default)."""
    from clipsuite.core.train import TrainConfig, Trainer

    if settings.max_steps == 0 or settings.epochs == 0:
        return
    with tempfile.TemporaryDirectory(prefix="clipsuite-adapt-") as tmp:
        output = settings.output_dir or Path(tmp)
        config = TrainConfig(output_dir=output, epochs=settings.epochs, max_steps=settings.max_steps,
                             batch_size=min(settings.batch_size, len(dataset)), lr=settings.lr,  # type: ignore[arg-type]  # map-style: has len
                             weight_decay=settings.weight_decay, optimizer=settings.optimizer,
                             schedule="cosine", warmup_steps=settings.warmup_steps, precision=settings.precision,
                             seed=settings.seed, progress=settings.progress, log_every=50,
                             checkpoint_every=0)  # one checkpoint, at the end: runs are short
        # Our own seeded DataLoader rather than the Trainer's per-sample-seeded Dataset plan: samples here
        # are cached tensors with nothing random to seed, and torch.manual_seed per sample costs ~3 ms
        # on a CPU-only machine (it records a stack trace for the lazy CUDA seeding) -- most of a run.
        generator = torch.Generator().manual_seed(settings.seed)
        loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, generator=generator)
        Trainer(task, config).fit(loader)
    task.module.eval()
