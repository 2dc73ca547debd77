"""The ``Trainer``: one training loop, on Hugging Face accelerate, for every clipsuite task.

A task (``task.TrainTask``) is a ``module`` plus ``loss(batch)``, with optional hooks. The Trainer
wraps it in ``TaskStep`` (forward = the task's loss) and hands that to ``accelerator.prepare``
with the optimizer and schedule, so DDP's bucketed all-reduce runs overlapped with backward and FSDP
can shard a model that does not fit one GPU. Each micro-batch runs under
``accelerator.accumulate`` and ``accelerator.backward``; gradients are clipped with
``accelerator.clip_grad_norm_``. The batch order is the Trainer's own (``order.py``): a pure
function of seed and epoch, so a resumed run skips what it saw without loading it.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, send_to_device, set_seed

from clipsuite.core.checkpoints import atomic_write_json
from clipsuite.core.errors import ClipsuiteError
from clipsuite.core.precision import Precision
from clipsuite.core.progress import progress_bar
from clipsuite.core.train import state as st
from clipsuite.core.train.checkpointing import Position, Saved, restore_checkpoint, save_checkpoint
from clipsuite.core.train.config import TrainConfig
from clipsuite.core.train.data_plan import DataPlan, make_plan
from clipsuite.core.train.ema import EMA
from clipsuite.core.train.launch import begin_group, build_accelerator
from clipsuite.core.train.logbook import MetricsLog, Window
from clipsuite.core.train.run_options import CONFIG_FILE, OPTIONS_KEY, as_json
from clipsuite.core.train.schedule import build_scheduler
from clipsuite.core.train.shards import vectorize_scalars
from clipsuite.core.train.task import (
    AfterStep,
    Collates,
    Configured,
    Evaluates,
    HoldsFrozen,
    RunSteps,
    Scheduled,
    TaskStep,
    TrainTask,
    check_task,
    split_loss,
)

if TYPE_CHECKING:
    from torch.distributed.fsdp import FSDPModule

logger = logging.getLogger("clipsuite.core.train")


@dataclass
class TrainResult:
    output_dir: Path
    step: int                      # optimizer steps done in total
    epoch: float                   # epochs done (fractional when stopped by max_steps)
    metrics: dict[str, float] = field(default_factory=dict)  # last logged train and eval values
    checkpoint: Path | None = None  # the trained weights, whole (also under FSDP)
    resumed_from: int | None = None  # the step a resumed run started from


@dataclass
class _Run:
    """What ``fit`` prepared: accelerate's wrappers and the plain objects behind them."""

    step_module: torch.nn.Module     # TaskStep, wrapped by accelerate (DDP, FSDP or as is)
    optimizer: Any                   # accelerate's AcceleratedOptimizer
    scheduler: Any                   # accelerate's AcceleratedScheduler
    trained: dict[str, torch.nn.Parameter]
    saved: Saved
    plan: DataPlan
    log: MetricsLog


def _no_decay(name: str, param: torch.Tensor) -> bool:
    # as open_clip: no weight decay on gains, biases, norms and the logit scale
    return param.ndim < 2 or any(key in name for key in ("bn", "ln", "bias", "logit_scale"))


class Trainer:
    """``options``: how the command that trains was started (``run_options``), kept in ``config.json`` so
    that ``--resume`` can continue the run with them."""

    def __init__(self, task: TrainTask, config: TrainConfig, options: Mapping[str, Any] | None = None) -> None:
        self.task = check_task(task)
        self.config = config
        self.options = as_json(dict(options)) if options is not None else None
        self.accelerator: Accelerator | None = None
        self.precision: Precision | None = None

    @property
    def sharded(self) -> bool:
        """True when FSDP trained the module: after ``fit`` it stays sharded across the processes
        (``TrainResult.checkpoint`` holds the whole trained weights)."""
        return self.accelerator is not None and self.accelerator.distributed_type == DistributedType.FSDP

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The run's autocast (none before ``fit`` or in fp32)."""
        return self.accelerator.autocast() if self.accelerator is not None else contextlib.nullcontext()

    # ---- setup ---------------------------------------------------------------------------------
    def _build_optimizer(self, named: dict[str, torch.nn.Parameter]) -> torch.optim.Optimizer:
        cfg = self.config
        decay = [p for n, p in named.items() if not _no_decay(n, p)]
        plain = [p for n, p in named.items() if _no_decay(n, p)]
        groups = [g for g in ({"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": plain, "weight_decay": 0.0}) if g["params"]]
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
        optim_class = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        return optim_class(groups, lr=cfg.lr, betas=cfg.betas)

    def _enable_grad_checkpointing(self, module: torch.nn.Module) -> None:
        found = False
        for sub in module.modules():
            setter = getattr(sub, "set_grad_checkpointing", None)
            if callable(setter):
                setter(True)
                found = True
        if not found:
            logger.warning("grad_checkpointing: %s has no set_grad_checkpointing(); training without it",
                           type(module).__name__)

    def _prepare(self, acc: Accelerator, train_data: Any) -> _Run:
        cfg, task = self.config, self.task
        module = task.module
        if cfg.grad_checkpointing:
            self._enable_grad_checkpointing(module)
        if isinstance(task, HoldsFrozen):  # frozen models the loss uses go where the trained one goes
            for frozen in task.frozen_modules():
                frozen.to(acc.device)
        scalars: frozenset[str] = frozenset()
        if acc.distributed_type == DistributedType.FSDP:  # FSDP places the shards: the model need not fit a GPU
            scalars = vectorize_scalars(module)
        else:
            module.to(acc.device)
        named = {n: p for n, p in module.named_parameters() if p.requires_grad}
        if not named:
            raise ClipsuiteError("nothing to train: the task's module has no parameter with requires_grad=True")
        plan = make_plan(train_data, cfg, task.collate if isinstance(task, Collates) else None, acc)
        total = cfg.max_steps or cfg.epochs * math.ceil(len(plan) / cfg.grad_accum)
        optimizer = self._build_optimizer(named)
        scheduler = build_scheduler(optimizer, total, cfg.warmup_steps, cfg.schedule)
        # DDP broadcasts rank 0's weights when it wraps; FSDP loads rank 0's into the shards
        step_module, wrapped_optimizer, wrapped_scheduler = acc.prepare(TaskStep(task), optimizer, scheduler)
        named = {n: p for n, p in module.named_parameters() if p.requires_grad}  # FSDP swapped them for shards
        ema = EMA(named, cfg.ema_decay) if cfg.ema_decay else None
        saved = Saved(module=module, optimizer=optimizer, scheduler=scheduler, ema=ema,
                      batches_per_epoch=len(plan), total_steps=total, scalars=scalars)
        return _Run(step_module, wrapped_optimizer, wrapped_scheduler, named, saved, plan,
                    MetricsLog(cfg.output_dir, enabled=acc.is_main_process))

    def _start(self, acc: Accelerator, run: _Run) -> tuple[Position, int | None]:
        """A fresh start, or the position of the checkpoint to resume from."""
        out = self.config.output_dir
        record = st.read_record(out) if self.config.resume else None
        if record is not None:
            pos = restore_checkpoint(acc, self.config, run.saved, record)
            run.log.reset(keep_until_step=pos.step)
            acc.wait_for_everyone()
            return pos, pos.step
        if acc.is_main_process:
            st.clear(out)
            run.log.reset()
            stored = {"train": self.config.to_json(), "task": self._task_config()}
            if self.options is not None:
                stored[OPTIONS_KEY] = self.options
            atomic_write_json(out / CONFIG_FILE, stored)
        acc.wait_for_everyone()
        return Position(), None

    # ---- the loop ------------------------------------------------------------------------------
    def fit(self, train_data: Any) -> TrainResult:
        cfg = self.config
        acc, self.precision = build_accelerator(cfg, self.task.module)
        self.accelerator = acc
        set_seed(cfg.seed)
        if acc.is_main_process:
            cfg.output_dir.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        run = self._prepare(acc, train_data)
        pos, resumed_from = self._start(acc, run)
        total = run.saved.total_steps
        if isinstance(self.task, Scheduled):
            self.task.start_schedule(RunSteps(total, math.ceil(run.saved.batches_per_epoch / cfg.grad_accum)))
        bar = progress_bar(total, "train", initial=pos.step, dynamic_ncols=True,
                           enabled=cfg.progress and acc.is_main_process)
        metrics: dict[str, float] = {}
        window = run.saved.window  # restored on resume: the next log line averages what it would have
        saved_step = pos.step if resumed_from is not None else -1
        self.task.module.train()
        run.saved.optimizer.zero_grad(set_to_none=True)
        while pos.step < total:
            n = len(run.plan)
            for batch in run.plan.batches(pos.epoch, pos.batch):
                group_start = (pos.batch // cfg.grad_accum) * cfg.grad_accum
                group_size = min(cfg.grad_accum, n - group_start)
                if pos.batch == group_start:
                    begin_group(acc, group_size)
                batch = send_to_device(batch, acc.device)
                with acc.accumulate(run.step_module):
                    loss, parts = split_loss(run.step_module(batch))
                    acc.backward(loss.float())
                window.add(parts)
                pos.batch += 1
                if pos.batch - group_start < group_size:
                    continue
                lr = self._optimizer_step(run)
                pos.step += 1
                bar.update(1)
                if pos.step % cfg.log_every == 0 or pos.step == total:
                    logged = self._log_window(window, pos, n, lr, run.log)
                    metrics.update(logged)
                    bar.set_postfix(loss=f"{logged['loss']:.4f}", lr=f"{lr:.2e}")
                    window.clear()
                epoch_end, finished = pos.batch >= n, pos.step >= total
                if epoch_end or finished:  # evaluate at each epoch end, and where max_steps stops
                    metrics.update(self._evaluate(run, pos))
                if epoch_end:
                    pos.epoch, pos.batch = pos.epoch + 1, 0
                every = cfg.checkpoint_every  # None: each epoch end; 0: only the final one
                if (every and pos.step % every == 0) or (every is None and epoch_end) or finished:
                    save_checkpoint(acc, cfg, run.saved, pos, self._task_config())
                    saved_step = pos.step
                if pos.step >= total:
                    break
            else:
                if pos.batch > 0:  # a user DataLoader ran out before its len(): close the epoch
                    run.saved.optimizer.zero_grad(set_to_none=True)
                    pos.epoch, pos.batch = pos.epoch + 1, 0
        bar.close()
        if saved_step != pos.step:
            save_checkpoint(acc, cfg, run.saved, pos, self._task_config())
        if run.saved.ema is not None:
            run.saved.ema.copy_to_params()  # after fit the module holds the averaged weights
        acc.wait_for_everyone()
        _drop_prepared(acc)  # accelerate's references to the wrappers go; the task keeps its module
        epochs_done = pos.epoch + pos.batch / max(1, len(run.plan))
        return TrainResult(output_dir=cfg.output_dir, step=pos.step, epoch=epochs_done, metrics=metrics,
                           checkpoint=cfg.output_dir / st.WEIGHTS_FILE, resumed_from=resumed_from)

    def _optimizer_step(self, run: _Run) -> float:
        acc = self.accelerator
        assert acc is not None and acc.sync_gradients  # the group's last micro-batch synchronised
        if self.config.max_grad_norm:
            acc.clip_grad_norm_(list(run.trained.values()), self.config.max_grad_norm)  # unscales fp16 first
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        if isinstance(self.task, AfterStep):  # e.g. clamp a logit scale, update an EMA teacher
            with torch.no_grad():
                self.task.after_step()
        lr = float(run.optimizer.param_groups[0]["lr"])
        run.scheduler.step()
        if run.saved.ema is not None:
            run.saved.ema.update()
        return lr

    def _log_window(self, window: Window, pos: Position, n: int, lr: float, log: MetricsLog) -> dict[str, float]:
        acc = self.accelerator
        assert acc is not None
        keys = sorted(window.sums)
        means = torch.stack([window.sums[k] for k in keys]) / max(1, window.count)
        if acc.num_processes > 1:
            means = acc.reduce(means, reduction="mean")
        values = {k: float(v) for k, v in zip(keys, means.tolist())}
        if not math.isfinite(values.get("loss", 0.0)):
            raise ClipsuiteError(f"training diverged: loss is {values['loss']} at step {pos.step} "
                                 "(lower the learning rate, or train in fp32)")
        log.write({"step": pos.step, "epoch": round(pos.epoch + pos.batch / max(1, n), 4), "lr": lr, **values})
        return values

    @contextlib.contextmanager
    def _whole(self, run: _Run) -> Iterator[None]:
        """Under FSDP, the root unit's parameters gathered, so that evaluation may call any method of
        the module (the blocks gather their own in their forward)."""
        if not self.sharded:
            yield
            return
        root = cast("FSDPModule", run.step_module)  # sharded: accelerate's FSDP2 made the root a unit
        root.unshard()
        try:
            yield
        finally:
            root.reshard()

    def _evaluate(self, run: _Run, pos: Position) -> dict[str, float]:
        acc = self.accelerator
        assert acc is not None
        if not isinstance(self.task, Evaluates):
            return {}
        values: dict[str, float] = {}
        # once, on the main process; under FSDP on every process, since each holds only a shard
        if acc.is_main_process or self.sharded:
            module = self.task.module
            module.eval()
            with torch.no_grad(), acc.autocast(), self._whole(run):
                values = {f"eval/{k}": float(v) for k, v in (self.task.evaluate() or {}).items()}
            module.train()
            if values:
                run.log.write({"step": pos.step, "epoch": round(pos.epoch + pos.batch / max(1, len(run.plan)), 4),
                               **values})
        acc.wait_for_everyone()
        return values

    def _task_config(self) -> dict[str, Any]:
        return dict(self.task.config()) if isinstance(self.task, Configured) else {}


def _drop_prepared(acc: Any) -> None:
    """What ``Accelerator.free_memory`` does, minus its ``gc.collect()``: a full collection costs ~0.5-4 s in a
    process holding many objects (a test session, a notebook), on every run, and frees nothing here that
    reference counting does not."""
    for name in ("_schedulers", "_optimizers", "_models", "_dataloaders"):
        if isinstance(getattr(acc, name, None), list):
            setattr(acc, name, [])
    acc.step = 0
