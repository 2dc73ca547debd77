"""What an MLP decoder run is, torch-free: ``clipsuite-brain fit --decoder mlp`` builds its options from these
fields (``clipsuite.cli.run_config``), checks them here before torch is imported, stores exactly this
config with the run and reloads it on ``--resume``. The schedule's rules are ``TrainConfig``'s own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from clipsuite.core.errors import InputError
from clipsuite.core.run_config import below, cli, schedule_problems
from clipsuite.core.train.config import TrainConfig

REPETITIONS = ("average", "single")
DEFAULT_MODEL = "ViT-B-32"
WEIGHT_DECAY = 1e-2  # AdamW's, as MindEye trains


@dataclass
class MLPRun:
    """The decoder's data preparation, CLIP model, network and schedule (not where it writes or runs)."""

    ADJUSTABLE: ClassVar[tuple[str, ...]] = ("epochs", "checkpoint_every")  # may change on --resume

    dataset: str | None = field(default=None, metadata=cli(
        "Dataset config JSON (betas, mask, trials, stimuli); mlp --resume: the run's own when left out.",
        argument=True, path=True))
    test_fraction: float = field(default=0.2, metadata=cli("Held-out stimuli when the table has no split."))
    seed: int = field(default=0, metadata=cli("Seed of the split and of the MLP's initialisation and order."))
    per_session: bool = field(default=False, metadata=cli("Z-score each session with its own training trials.",
                                                          "--per-session/--no-per-session"))
    train_repetitions: str = field(default="single", metadata=cli("average | single (training samples)."))
    model: str = field(default=DEFAULT_MODEL, metadata=cli(
        "CLIP model: open_clip name, preset, folder or 'tiny'.", "--model", "-m"))
    pretrained: str | None = field(default=None, metadata=cli(
        "open_clip pretrained tag (default openai for the default model)."))
    epochs: int = field(default=60, metadata=cli("mlp: epochs (MindEye: 240)."))
    batch_size: int = field(default=32, metadata=cli("mlp: batch per process."))
    lr: float = field(default=3e-4, metadata=cli("mlp: peak learning rate (AdamW, cosine)."))
    hidden: int = field(default=4096, metadata=cli("mlp: width of the residual MLP (MindEye: 4096)."))
    blocks: int = field(default=4, metadata=cli("mlp: residual blocks (MindEye: 4)."))
    projector: int = field(default=0, metadata=cli("mlp: projector width after each head (MindEye: 2048; 0: none)."))
    mixup_fraction: float = field(default=0.33, metadata=cli(
        "mlp: share of epochs trained with BiMixCo before SoftCLIP (MindEye: 0.33)."))
    text_weight: float = field(default=1.0, metadata=cli("mlp: weight of the text head's loss."))
    vae_latent: int = field(default=0, metadata=cli("mlp: VAE variant with a code this wide (0: plain MLP)."))
    kl_weight: float = field(default=1e-3, metadata=cli("mlp VAE: weight of the KL term."))
    recon_weight: float = field(default=0.1, metadata=cli("mlp VAE: weight of the voxel reconstruction error."))
    precision: str = field(default="auto", metadata=cli("mlp: auto, fp32, amp_bf16, amp_fp16."))
    grad_accum: int = field(default=1, metadata=cli("mlp: micro-batches per optimizer step."))
    checkpoint_every: int | None = field(default=None, metadata=cli(
        "mlp: checkpoint every N optimizer steps (default: each epoch; 0: only at the end)."))

    def __post_init__(self) -> None:
        """Every bad flag of the run in one line (torch-free: the CLI calls this before loading anything)."""
        if self.dataset is None:
            raise InputError("missing DATASET (the dataset config); only --resume of a run started with it may "
                             "leave it out")
        problems = []
        if self.train_repetitions not in REPETITIONS:
            problems.append(f"--train-repetitions '{self.train_repetitions}': expected average or single")
        if not 0 < self.test_fraction < 1:
            problems.append(f"--test-fraction {self.test_fraction}: expected a number between 0 and 1")
        problems += below(self, 1, "hidden")
        problems += below(self, 0, "blocks", "projector", "text_weight", "vae_latent", "kl_weight", "recon_weight")
        if not 0 <= self.mixup_fraction <= 1:
            problems.append(f"--mixup-fraction must be in [0, 1] (got {self.mixup_fraction})")
        problems += schedule_problems(lambda: self.train_config(Path(".")))  # epochs, batch, lr ...: TrainConfig's
        if problems:
            raise InputError("; ".join(problems))

    def train_config(self, run_dir: Path, **how: Any) -> TrainConfig:
        """The Trainer's config for this run in ``run_dir``; ``how``: resume, device ..."""
        return TrainConfig(output_dir=run_dir, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=WEIGHT_DECAY, precision=self.precision, grad_accum=self.grad_accum,
                           seed=self.seed, log_every=1, checkpoint_every=self.checkpoint_every, **how)

    def to_options(self) -> dict[str, Any]:
        """What is stored with the run and compared on ``--resume`` (the keys older runs stored too)."""
        return asdict(self)
