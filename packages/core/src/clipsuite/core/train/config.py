"""``TrainConfig``: every knob of a training run, as one typed dataclass (no argparse namespaces)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipsuite.core.errors import InputError
from clipsuite.core.precision import CAST, check_precision

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "constant")
DISTRIBUTED = ("ddp", "fsdp")


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
    # clipsuite.core.precision's names: auto (amp_bf16, or amp_fp16 on an older GPU; fp32 on the CPU;
    # `accelerate launch --mixed_precision` decides when given), fp32, amp_bf16, amp_fp16 (CUDA only)
    precision: str = "auto"
    grad_checkpointing: bool = False
    ema_decay: float | None = None
    max_grad_norm: float | None = None
    checkpoint_every: int | None = None   # optimizer steps; None = at each epoch end; 0 = only at the end
    # several processes: "ddp" replicates the module (DDP's bucketed all-reduce, overlapped with backward);
    # "fsdp" shards it across GPUs with accelerate's FSDP2 plugin (one process: no sharding)
    distributed: str = "ddp"
    fsdp_wrap: tuple[str, ...] | None = None  # fsdp: block classes sharded as units (None: found by shape)
    ddp_find_unused: bool = True          # ddp: allow batches that leave some trainable parameters unused
    log_every: int = 10
    seed: int = 0
    num_workers: int = 0
    resume: bool = False
    progress: bool = True
    # one process: cpu, cuda, cuda:N or mps; None: a visible GPU, else the CPU (a multi-process launch
    # places each process itself)
    device: str | None = None
    shuffle: bool = True
    drop_last: bool = False

    def __post_init__(self, flags: dict[str, str] | None = None) -> None:
        self.output_dir = Path(self.output_dir)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.fsdp_wrap is not None:
            self.fsdp_wrap = tuple(str(name) for name in self.fsdp_wrap)
        problems = []
        for name in ("epochs", "batch_size", "grad_accum", "log_every"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.max_steps is not None and int(self.max_steps) < 1:
            problems.append(f"max_steps must be >= 1 or None (got {self.max_steps})")
        if self.checkpoint_every is not None and int(self.checkpoint_every) < 0:
            problems.append(f"checkpoint_every must be >= 0 or None (got {self.checkpoint_every})")
        problems += [f"{name} must be >= 0 (got {getattr(self, name)})" for name in ("warmup_steps", "num_workers")
                     if getattr(self, name) < 0]  # apart: a command without --num-workers never names it
        if not self.lr > 0:
            problems.append(f"lr must be > 0 (got {self.lr})")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0 (got {self.weight_decay})")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"unknown optimizer '{self.optimizer}' (choose from {', '.join(OPTIMIZERS)})")
        if self.schedule not in SCHEDULES:
            problems.append(f"unknown schedule '{self.schedule}' (choose from {', '.join(SCHEDULES)})")
        problems.extend(self._precision_problems())
        if self.distributed not in DISTRIBUTED:
            problems.append(f"unknown distributed mode '{self.distributed}' (choose from {', '.join(DISTRIBUTED)})")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            problems.append(f"ema_decay must be in (0, 1) (got {self.ema_decay})")
        if self.device is not None and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", self.device):
            problems.append(f"device must be cpu, cuda, cuda:N or mps (got '{self.device}')")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            problems.append(f"max_grad_norm must be > 0 (got {self.max_grad_norm})")
        if problems:
            raise InputError("TrainConfig: " + "; ".join(problems), cli=in_flag_words(problems, flags or {}))

    # the run's field -> the flag a command gives it, where it is not --field-name (a command's config sets it)
    flags: dataclasses.InitVar[dict[str, str] | None] = None

    def _precision_problems(self) -> list[str]:
        try:
            self.precision = check_precision(self.precision)
        except ValueError as error:
            return [str(error)]
        if self.precision in CAST:  # the optimizer needs float32 master weights
            return [f"precision '{self.precision}' casts the weights, which training cannot do; "
                    f"use amp_{self.precision} (float32 weights, {self.precision} compute)"]
        return []

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["output_dir"] = str(self.output_dir)
        data["betas"] = list(self.betas)
        data["fsdp_wrap"] = list(self.fsdp_wrap) if self.fsdp_wrap is not None else None
        return data


def in_flag_words(problems: list[str], flags: dict[str, str]) -> str:
    """The problems with each field name in the words a command-line user typed (``lr`` -> ``--lr``,
    ``warmup_steps`` -> the command's ``--warmup``)."""
    names = sorted((f.name for f in dataclasses.fields(TrainConfig)), key=len, reverse=True)
    # a field named as the subject of its rule ("lr must be > 0", "warmup_steps must be >= 0 ..."),
    # not a word of the text ("unknown precision 'fp8'" stays as it is)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b(?= must| and )")
    def flag(name: str) -> str:
        return flags.get(name, "--" + name.replace("_", "-"))

    def words(problem: str) -> str:
        unknown = re.match(r"unknown (\w+) ", problem)  # "unknown precision 'fp8' ...": say whose value it is
        if unknown and unknown.group(1) in names:
            return f"{flag(unknown.group(1))}: {problem}"
        return pattern.sub(lambda m: flag(m.group(1)), problem)

    return "; ".join(words(problem) for problem in problems)
