"""What a training run of AnomalyCLIP prompts / AdaptCLIP adapters is, torch-free.

``clipsuite-anomaly train`` builds its options from these fields (``clipsuite.cli.run_config``), checks them
here before torch is imported, stores exactly this config with the run and reloads it on ``--resume``;
``clipsuite.anomaly.train.train_run`` runs it. The schedule's rules are ``TrainConfig``'s own, and the
schedule itself is built in one place (``learned_schedule``) for this config and ``train_learned`` alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from clipsuite.anomaly.presets import DEFAULT_MODEL
from clipsuite.core.errors import InputError
from clipsuite.core.run_config import cli, schedule_problems
from clipsuite.core.train.config import TrainConfig

MIN_IMAGE_SIZE = 16  # px: below this the position grid has too few patches to resample


def learned_schedule(output_dir: Path, epochs: int, lr: float, batch_size: int, max_steps: int | None, seed: int,
                     checkpoint_every: int | None, **how: Any) -> TrainConfig:
    """The Trainer's config of a learned method: Adam at a constant rate, as AnomalyCLIP; ``how``: betas,
    resume, progress, device ... (raises ``InputError`` naming the bad fields)."""
    return TrainConfig(output_dir=output_dir, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                       optimizer="adam", schedule="constant", seed=seed, log_every=1,
                       checkpoint_every=checkpoint_every, **how)


@dataclass
class TrainRun:
    """The data, the method, the backbone and the schedule of a run, and where its weights go (stored with
    the run since its first version: a resume from ``--run-dir`` alone writes them there again). Not part
    of it: the run folder, the device, ``--overwrite``."""

    ADJUSTABLE: ClassVar[tuple[str, ...]] = ("epochs", "max_steps", "checkpoint_every")  # may change on --resume

    dataset: str | None = field(default=None, metadata=cli(
        "Training dataset with masks (e.g. the other benchmark's test split). With --resume it may be left out.",
        argument=True, path=True))
    method: str = field(default="anomalyclip", metadata=cli(
        "A trained method: anomalyclip, adaptclip ... (`methods` lists them)."))
    out: str = field(default="anomaly_prompts.safetensors", metadata=cli(
        "Where to save the learned parts (.safetensors).", "--output", "-o", "--out", path=True))
    format: str = field(default="auto", metadata=cli("auto | mvtec | visa | meta | folder"))
    epochs: int = field(default=15, metadata=cli("Passes over the training images."))
    lr: float = field(default=1e-3, metadata=cli("Learning rate (Adam, constant)."))
    batch_size: int = field(default=8, metadata=cli("Images per step."))
    max_steps: int | None = field(default=None, metadata=cli("Stop after this many optimizer steps."))
    checkpoint_every: int | None = field(default=None, metadata=cli(
        "Steps between checkpoints (default: each epoch end).", "--checkpoint-every"))
    model: str = field(default=DEFAULT_MODEL, metadata=cli(
        "Backbone: open_clip name, preset, folder or 'tiny'.", "--model", "-m"))
    pretrained: str | None = field(default=None, metadata=cli(
        "open_clip pretrained tag (default laion400m_e31 for the default backbone)."))
    seed: int = field(default=0, metadata=cli("Seed of the learned parts' initialisation and the data order."))
    image_size: int | None = field(default=None, metadata=cli(
        "Input size in px (the position grid is resampled): the papers run AnomalyCLIP and AdaptCLIP at 518; "
        "default: the model's own. Trained files need the size they were trained at.", "--image-size"))

    def __post_init__(self) -> None:
        """Every bad flag of the run in one line (torch-free: the CLI calls this before loading anything)."""
        if self.dataset is None:
            raise InputError("missing DATASET (training images with masks); only --resume may leave it out")
        problems = []
        if self.image_size is not None and self.image_size < MIN_IMAGE_SIZE:
            problems.append(f"--image-size {self.image_size}: give {MIN_IMAGE_SIZE} px or more")
        problems += schedule_problems(lambda: self.train_config(Path(".")))  # epochs, batch, lr ...: TrainConfig's
        if problems:
            raise InputError("; ".join(problems))

    def train_config(self, run_dir: Path, **how: Any) -> TrainConfig:
        """The Trainer's config for this run in ``run_dir``; ``how``: betas, resume, progress ..."""
        return learned_schedule(run_dir, self.epochs, self.lr, self.batch_size, self.max_steps, self.seed,
                                self.checkpoint_every, **how)

    def to_options(self) -> dict[str, Any]:
        """What is stored with the run and compared on ``--resume`` (the keys older runs stored too)."""
        return asdict(self)
