"""``TrainConfig``: every knob of a training run, as one typed dataclass (no argparse namespaces)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipsuite.core.errors import InputError

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Settings of one run. ``batch_size`` is per process (per GPU), as under ``accelerate launch``;
    the effective batch is ``batch_size * grad_accum * num_processes``. Steps count optimizer steps."""

    output_dir: Path = field(default_factory=lambda: Path("runs/train"))
    epochs: int = 1
    max_steps: int | None = None          # overrides epochs when given
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    momentum: float = 0.9                 # sgd only
    betas: tuple[float, float] = (0.9, 0.999)  # adam/adamw only
    schedule: str = "cosine"
    warmup_steps: int = 0
    grad_accum: int = 1
    precision: str = "auto"               # auto: bf16 (fp16 if unsupported) on GPU, fp32 on CPU
    grad_checkpointing: bool = False
    ema_decay: float | None = None
    max_grad_norm: float | None = None
    checkpoint_every: int | None = None   # optimizer steps; None = at each epoch end
    log_every: int = 10
    seed: int = 0
    num_workers: int = 0
    resume: bool = False
    progress: bool = True
    shuffle: bool = True
    drop_last: bool = False

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        problems = []
        for name in ("epochs", "batch_size", "grad_accum", "log_every"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        for name in ("max_steps", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                problems.append(f"{name} must be >= 1 or None (got {value})")
        if self.warmup_steps < 0 or self.num_workers < 0:
            problems.append("warmup_steps and num_workers must be >= 0")
        if not self.lr > 0:
            problems.append(f"lr must be > 0 (got {self.lr})")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0 (got {self.weight_decay})")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"unknown optimizer '{self.optimizer}' (choose from {', '.join(OPTIMIZERS)})")
        if self.schedule not in SCHEDULES:
            problems.append(f"unknown schedule '{self.schedule}' (choose from {', '.join(SCHEDULES)})")
        if self.precision not in PRECISIONS:
            problems.append(f"unknown precision '{self.precision}' (choose from {', '.join(PRECISIONS)})")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            problems.append(f"ema_decay must be in (0, 1) (got {self.ema_decay})")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            problems.append(f"max_grad_norm must be > 0 (got {self.max_grad_norm})")
        if problems:
            raise InputError("TrainConfig: " + "; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["output_dir"] = str(self.output_dir)
        data["betas"] = list(self.betas)
        return data
