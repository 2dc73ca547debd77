"""What a contrastive run is, torch-free: the loss settings and the whole run's config, which owns its checks.

``ContrastiveRun`` is the one description of a ``clipsuite train`` run: the CLI builds its options from
these fields (``clipsuite.cli.run_config``), checks them here before torch is imported, stores exactly
this config with the run and reloads it on ``--resume``; ``clipsuite.core.contrastive.train_run`` runs it.
Field metadata ``cli`` carries the help text (and the flags, where they differ from ``--field-name``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from clipsuite.core.errors import InputError
from clipsuite.core.run_config import cli
from clipsuite.core.train.config import TrainConfig

LOSSES = ("clip", "siglip")
SHARD_MARKS = ("{", "://", "::", "pipe:")  # a webdataset source that is not one path on this machine


@dataclass
class ContrastiveConfig:
    loss: str = "clip"
    lock_image: bool = False        # freeze the image tower (LiT-style)
    lock_text: bool = False         # freeze the text tower
    learn_logit_scale: bool = True
    init_logit_scale: float | None = None  # log-space; None keeps the model's own
    init_logit_bias: float | None = None   # SigLIP only; None keeps the model's or uses -10
    local_loss: bool = True         # see clipsuite.core.losses (matters with several processes)
    gather_with_grad: bool = True
    shared_positives: bool = False  # CLIP loss: identical captions in a batch all count as positives

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise InputError(f"unknown loss '{self.loss}' (choose from {', '.join(LOSSES)})")
        if self.shared_positives and self.loss != "clip":
            raise InputError("shared positives apply to the clip loss only")
        if self.lock_image and self.lock_text and not self.learn_logit_scale:
            raise InputError("both towers locked and a fixed logit scale: nothing would train")


@dataclass
class ContrastiveRun:
    """A contrastive fine-tuning run: data, model, schedule and loss (not where it writes or how it shows
    progress: those belong to the invocation, not to the run)."""

    ADJUSTABLE: ClassVar[tuple[str, ...]] = ("epochs", "max_steps", "checkpoint_every")  # may change on --resume

    data: str | None = field(default=None, metadata=cli(
        "Image-text pairs: CSV/TSV (filepath, title), JSONL, Karpathy JSON, or webdataset .tar shards (a file, a "
        "folder, or a {000..009} pattern). With --resume it may be left out, or be the run folder itself.",
        argument=True, path=True))
    model: str = field(default="tiny", metadata=cli(
        "Model spec: a preset (`clipsuite models`), open_clip name, folder, .safetensors file or hf-hub:org/repo.",
        "--model", "-m"))
    pretrained: str | None = field(default=None, metadata=cli("Pretrained tag or weight file for --model."))
    epochs: int = field(default=1, metadata=cli("Passes over the data."))
    max_steps: int | None = field(default=None, metadata=cli("Stop after this many optimizer steps."))
    batch_size: int = field(default=32, metadata=cli("Pairs per step and process.", "--batch-size", "-b"))
    lr: float = field(default=5e-4, metadata=cli("Peak learning rate (AdamW, cosine schedule)."))
    weight_decay: float = field(default=0.1, metadata=cli("AdamW weight decay."))
    warmup: int = field(default=0, metadata=cli("Linear warm-up steps."))
    loss: str = field(default="clip", metadata=cli("clip (softmax InfoNCE) or siglip (sigmoid)."))
    lock_image: bool = field(default=False, metadata=cli("Freeze the image tower.", "--lock-image"))
    lock_text: bool = field(default=False, metadata=cli("Freeze the text tower.", "--lock-text"))
    shared_positives: bool = field(default=False, metadata=cli(
        "clip loss: repeated captions in a batch are all positives.", "--shared-positives"))
    precision: str = field(default="auto", metadata=cli(
        "auto, fp32, amp_bf16 or amp_fp16 (float32 weights, autocast compute). auto: amp_bf16 on a GPU (amp_fp16 on "
        "an older one), fp32 on the CPU, or what `accelerate launch --mixed_precision` says."))
    distributed: str = field(default="ddp", metadata=cli(
        "Several processes: ddp (replicated model) or fsdp (model sharded across GPUs, for models that do not fit "
        "one)."))
    grad_accum: int = field(default=1, metadata=cli("Micro-batches per optimizer step."))
    grad_checkpointing: bool = field(default=False, metadata=cli("Trade compute for memory.",
                                                                 "--grad-checkpointing"))
    ema: float | None = field(default=None, metadata=cli("EMA decay of the weights, e.g. 0.999."))
    checkpoint_every: int | None = field(default=None, metadata=cli(
        "Steps between checkpoints (default: each epoch end; 0: only the final one)."))
    image_column: str = field(default="filepath", metadata=cli("Column (or JSONL key) of image paths."))
    caption_column: str = field(default="title", metadata=cli("Column (or JSONL key) of captions."))
    split: str | None = field(default=None, metadata=cli("Karpathy JSON only: train on this split."))
    holdout: float = field(default=0.0, metadata=cli("Fraction of pairs held out for retrieval recall each epoch."))
    seed: int = field(default=0, metadata=cli("Seed of the data order and the initialisation."))

    def __post_init__(self) -> None:
        """Every problem of the run in one line, naming the flags (torch-free: a CLI calls this first)."""
        if self.data is None:
            raise InputError("missing DATA (image-text pairs); only --resume of a run started with this clipsuite "
                             "may leave it out")
        if not any(mark in self.data for mark in SHARD_MARKS) and not Path(self.data).exists():
            raise InputError(f"{self.data}: file not found (data)")
        if self.split is not None and Path(self.data).suffix.lower() != ".json":
            raise InputError(f"--split {self.split}: {self.data} has no splits (only a Karpathy JSON does); every "
                             "row would be trained on")
        if not 0 <= self.holdout < 1:
            raise InputError(f"--holdout must be in [0, 1) (got {self.holdout})")
        self.train_config(Path("."))  # the schedule's rules are TrainConfig's own: checked once, there
        self.loss_settings()  # the loss's own rules, in its words

    def train_config(self, output_dir: Path, **how: Any) -> TrainConfig:
        """The Trainer's config for this run in ``output_dir``; ``how``: resume, num_workers, progress ..."""
        return TrainConfig(output_dir=output_dir, epochs=self.epochs, max_steps=self.max_steps,
                           batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                           warmup_steps=self.warmup, precision=self.precision, grad_accum=self.grad_accum,
                           grad_checkpointing=self.grad_checkpointing, ema_decay=self.ema,
                           checkpoint_every=self.checkpoint_every, seed=self.seed, distributed=self.distributed,
                           flags={"warmup_steps": "--warmup", "ema_decay": "--ema", "num_workers": "--workers"}, **how)

    def loss_settings(self) -> ContrastiveConfig:
        return ContrastiveConfig(loss=self.loss, lock_image=self.lock_image, lock_text=self.lock_text,
                                 shared_positives=self.shared_positives)

    def to_options(self) -> dict[str, Any]:
        """What is stored with the run (``train.run_options``) and compared on ``--resume``."""
        return asdict(self)
