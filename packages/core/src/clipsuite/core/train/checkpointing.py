"""Saving a run's checkpoint and resuming from it (the files are described in ``state.py``).

accelerate's own ``save_state`` pickles the optimizer and the RNG states; clipsuite's rule is
safetensors + JSON written atomically, so the Trainer saves through ``state.py`` instead, with
torch's state-dict API gathering whatever DDP or FSDP holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate import Accelerator
from torch.optim.lr_scheduler import LambdaLR

from clipsuite.core.checkpoints import save_tensors
from clipsuite.core.errors import ClipsuiteError
from clipsuite.core.train import state as st
from clipsuite.core.train.config import TrainConfig
from clipsuite.core.train.ema import EMA
from clipsuite.core.train.logbook import Window
from clipsuite.core.train.schedule import follow_schedule

logger = logging.getLogger("clipsuite.core.train")
EMA_FILE = "ema.safetensors"
# settings a resumed run may change: where the folder lives, how it reports and loads, how long it runs
# (to train on) and how often it saves; every other one would make the resumed run another run
RESUME_MAY_CHANGE = frozenset({"output_dir", "resume", "progress", "num_workers", "epochs", "max_steps", "device",
                               "checkpoint_every"})


@dataclass
class Position:
    step: int = 0   # optimizer steps done
    epoch: int = 0
    batch: int = 0  # micro-batches of ``epoch`` already consumed by this process


@dataclass
class Saved:
    """The live objects a checkpoint holds."""

    module: torch.nn.Module              # the task's module (not the DDP/FSDP wrapper)
    optimizer: torch.optim.Optimizer     # torch's optimizer (not accelerate's wrapper)
    scheduler: LambdaLR                  # schedule.build_scheduler's
    ema: EMA | None
    batches_per_epoch: int
    total_steps: int
    scalars: frozenset[str] = frozenset()  # 0-dim parameters FSDP trains as vectors (shards.vectorize_scalars)
    window: Window = field(default_factory=Window)  # running sums of the next metrics line


def save_checkpoint(acc: Accelerator, config: TrainConfig, saved: Saved, pos: Position,
                    task_config: dict[str, Any]) -> None:
    """Write the checkpoint of ``pos`` and make it the one in force. Every process calls this."""
    out = config.output_dir
    ema = saved.ema.state_tensors() if saved.ema is not None else None
    tensors, optimizer_plain = st.gather_state(saved.module, saved.optimizer, ema, keep=acc.is_main_process,
                                              scalars=saved.scalars)
    window, count = saved.window.state()
    st.save_rng_file(out, pos.step, acc.process_index, window, {"window_count": count})
    if acc.is_main_process:
        st.save_step_tensors(out, pos.step, tensors, {"step": pos.step})
    acc.wait_for_everyone()
    if acc.is_main_process:
        scaler = acc.scaler
        st.commit(out, {
            "step": pos.step, "epoch": pos.epoch, "batch": pos.batch, "total_steps": saved.total_steps,
            "world_size": acc.num_processes, "batch_size": config.batch_size, "grad_accum": config.grad_accum,
            "batches_per_epoch": saved.batches_per_epoch, "optimizer": optimizer_plain,
            "scheduler": saved.scheduler.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
            "config": config.to_json(),
        })
        save_tensors(out / st.WEIGHTS_FILE, _strip(tensors, "w."), task_config)
        if saved.ema is not None:
            save_tensors(out / EMA_FILE, _strip(tensors, "ema."), task_config)
    acc.wait_for_everyone()


def restore_checkpoint(acc: Accelerator, config: TrainConfig, saved: Saved, record: dict[str, Any]) -> Position:
    """Load the checkpoint in force into the live objects; the position to continue from."""
    out = config.output_dir
    where = out / st.STATE_FILE
    before, now = record.get("world_size"), acc.num_processes
    if before != now:  # each process's data shard and RNG stream belong to that layout
        raise ClipsuiteError(f"{where}: cannot resume on {now} process(es), the run was saved by {before}; relaunch "
                             f"it on {before}, or train afresh (without --resume) or into another folder")
    _check_same_settings(where, record.get("config"), config)
    settings = (record.get("batch_size"), record.get("grad_accum"), record.get("batches_per_epoch"))
    current = (config.batch_size, config.grad_accum, saved.batches_per_epoch)
    if settings != current:
        raise ClipsuiteError(f"{where}: cannot resume, the run was saved with batch size/grad accum/batches per "
                             f"epoch = {settings} and now they are {current}; use the same data and settings")
    step = int(record["step"])
    tensors = st.load_step_tensors(out, step)
    st.restore_state(saved.module, saved.optimizer, tensors, record["optimizer"], out / st.step_tensor_file(step),
                     saved.scalars)
    saved.scheduler.load_state_dict(record["scheduler"])  # its step; the lambda is this run's (new total)
    follow_schedule(saved.scheduler)  # the optimizer came back with the old schedule's next lr
    if acc.scaler is not None and record.get("scaler"):
        acc.scaler.load_state_dict(record["scaler"])
    if saved.ema is not None:
        averaged = _strip(tensors, "ema.")
        if not averaged:
            raise ClipsuiteError(f"{where}: cannot resume with EMA, the run was saved without it")
        saved.ema.load_state_tensors(averaged)
    rng_tensors, rng_plain = st.load_rng_file(out, step, acc.process_index)
    st.set_rng_state(rng_tensors, rng_plain)
    saved.window.load(rng_tensors, int(rng_plain.get("window_count", 0)), acc.device)
    logger.info("resumed from %s at step %d", out, step)
    return Position(step=step, epoch=int(record["epoch"]), batch=int(record["batch"]))


def _check_same_settings(where: Any, saved: Any, config: TrainConfig) -> None:
    """One error naming every setting that differs from the run's own (a record without them passes)."""
    if not isinstance(saved, dict):
        return
    now = config.to_json()
    differences = [f"{name} {now[name]} (the run has {saved[name]})" for name in sorted(now)
                   if name not in RESUME_MAY_CHANGE and name in saved and now[name] != saved[name]]
    if differences:
        raise ClipsuiteError(f"{where}: cannot resume with other settings: {'; '.join(differences)}; use the "
                             "run's settings, or train afresh (without resume) or into another folder")


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
