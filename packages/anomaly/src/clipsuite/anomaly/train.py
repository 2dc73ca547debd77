"""Training AnomalyCLIP prompts / AdaptCLIP adapters with the core ``Trainer``.

The papers train on one dataset's test split (it has masks) and evaluate zero-shot on another. Items
are ``{"pixels", "mask" [S, S] float, "label", "reference"}``; the reference is a normal image of the
same category (train/good, else test/good), used by AdaptCLIP's prompt-query branch.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from clipsuite.anomaly.data import Category, Sample, load_dataset, load_mask, load_pixels
from clipsuite.anomaly.methods.learned import TrainedMethod, build_learned, save_learned
from clipsuite.anomaly.presets import pretrained_tag
from clipsuite.anomaly.train_run import TrainRun, learned_schedule
from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel, load_model
from clipsuite.core.train import Trainer, TrainResult


class AnomalyTrainSet(Dataset):
    def __init__(self, categories: Sequence[Category], size: int, mean: Sequence[float], std: Sequence[float],
                 seed: int = 0) -> None:
        self.size, self.mean, self.std = size, list(mean), list(std)
        self.items: list[tuple[Sample, list[Path]]] = []
        for category in categories:
            normals = [s.image for s in category.train] or [s.image for s in category.test if s.label == 0]
            if not normals:
                raise InputError(f"{category.name}: no normal image to use as a reference")
            for sample in category.test:
                if sample.label == 1 and sample.mask is None:
                    raise InputError(f"{sample.image}: anomalous training image without a mask "
                                     "(AnomalyCLIP/AdaptCLIP training needs masks)")
                self.items.append((sample, normals))
        if not self.items:
            raise InputError("no training images")
        if not any(sample.label for sample, _ in self.items):  # the weights would learn only "normal"
            raise InputError(f"{', '.join(c.name for c in categories)}: no anomalous training images; training "
                             "learns from defects with masks (e.g. a benchmark's test split)")
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample, normals = self.items[index]
        pixels, sizes = load_pixels([sample.image], self.size, self.mean, self.std)
        if sample.label and sample.mask is not None:
            mask = torch.from_numpy(load_mask(sample.mask, sizes[0])).float()[None, None]
            mask = (F.interpolate(mask, size=(self.size, self.size), mode="nearest")[0, 0] > 0.5).float()
        else:
            mask = torch.zeros(self.size, self.size)
        reference = normals[(index * 7919) % len(normals)]
        ref_pixels, _ = load_pixels([reference], self.size, self.mean, self.std)
        return {"pixels": pixels[0], "mask": mask, "label": torch.tensor(sample.label), "reference": ref_pixels[0]}


class LearnedTask:
    """An AnomalyCLIP/AdaptCLIP module as a ``TrainTask``: its learned prompts/adapters train, the CLIP
    model it encodes with is frozen and declared, so the Trainer places it beside them."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def frozen_modules(self) -> Sequence[ClipModel]:
        return [cast(TrainedMethod, self.module).clip]

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return cast(TrainedMethod, self.module).loss(batch)

    def config(self) -> dict[str, Any]:
        return {"method": self.module.name, "settings": self.module.settings}


@dataclass(frozen=True)
class LearnedFit:
    path: Path           # the learned parts (load_learned)
    train: TrainResult   # what the core Trainer did (steps, final loss, where a resumed run started)


def train_learned(clip: ClipModel, method: str, categories: Sequence[Category], out: str | Path,
                  epochs: int = 15, lr: float = 1e-3, batch_size: int = 8, max_steps: int | None = None,
                  seed: int = 0, settings: dict[str, Any] | None = None, run_dir: str | Path | None = None,
                  progress: bool = True, betas: tuple[float, float] | None = None, resume: bool = False,
                  options: Mapping[str, Any] | None = None, checkpoint_every: int | None = None) -> LearnedFit:
    """Train and save the learned parts to ``out`` (safetensors); Adam as AnomalyCLIP (lr 1e-3, the
    method's ``adam_betas``: the AnomalyCLIP reference uses (0.5, 0.999)).

    ``run_dir``: the Trainer's run folder (checkpoints, ``metrics.jsonl``, ``config.json`` with
    ``options``, how the calling command was started); kept, so ``resume`` can continue it. Without
    it the run lives in a temporary folder and cannot be resumed."""
    if resume and run_dir is None:
        raise InputError("resume needs the run folder of the run to continue (run_dir)")
    torch.manual_seed(seed)
    module = build_learned(clip, method, settings)
    betas = betas or cast(tuple[float, float], getattr(module, "adam_betas", (0.9, 0.999)))
    cfg = clip.preprocess_cfg
    dataset = AnomalyTrainSet(categories, clip.image_size, cfg.mean, cfg.std, seed)
    out = Path(out)
    scratch = None if run_dir is not None else tempfile.TemporaryDirectory(
        prefix=".anomaly-train-", dir=out.parent if out.parent.exists() else None)
    with scratch or contextlib.nullcontext():
        # scratch exists exactly when run_dir is None
        folder = Path(run_dir) if run_dir is not None else Path(scratch.name)  # type: ignore[union-attr]
        config = learned_schedule(folder, epochs, lr, batch_size, max_steps, seed, checkpoint_every, betas=betas,
                                  progress=progress, resume=resume)
        module.train()
        result = Trainer(LearnedTask(module), config, options).fit(dataset)
    module.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    # the images it learned from, so evaluating on them is refused (Detector.score_category)
    trained_images = sorted({str(s.image.resolve()) for c in categories for s in c.test})
    saved = save_learned(module, out, {"epochs": epochs, "lr": lr, "trained_on": sorted(c.name for c in categories),
                                       "trained_images": trained_images})
    return LearnedFit(saved, result)


def run_training(run: TrainRun, run_dir: str | Path, resume: bool = False, device: str | None = None,
                 progress: bool = True) -> LearnedFit:
    """A checked ``TrainRun`` (``clipsuite-anomaly train``'s): its dataset and backbone, trained in ``run_dir``
    with the run stored there (``resume`` continues it)."""
    assert run.dataset is not None  # TrainRun refuses a run without one
    categories = load_dataset(run.dataset, run.format)
    clip = load_model(run.model, pretrained=pretrained_tag(run.model, run.pretrained), device=device,
                      image_size=run.image_size)
    return train_learned(clip, run.method, categories, run.out, epochs=run.epochs, lr=run.lr,
                         batch_size=run.batch_size, max_steps=run.max_steps, seed=run.seed, run_dir=run_dir,
                         progress=progress, resume=resume, options=run.to_options(),
                         checkpoint_every=run.checkpoint_every)
