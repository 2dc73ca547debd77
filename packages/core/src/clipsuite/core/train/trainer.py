"""The ``Trainer``: one training loop, on Hugging Face accelerate, for every clipsuite task.

A task is any object with ``module`` (its parameters with ``requires_grad`` are trained) and
``loss(batch)`` (a tensor, or a dict holding ``"loss"``; other scalar entries are logged too);
optionally ``collate(items)``, ``evaluate() -> dict`` (each epoch end, main process, no grad),
``config() -> dict`` (stored with the weights) and ``after_step()`` (after each optimizer step, no
grad). The module is moved to the device; batches are moved there too (tensors inside dicts,
lists and tuples), so tensors a task needs should live in its module as buffers.

accelerate gives the process layout (one process per GPU under ``accelerate launch``, single
process otherwise), the device, seeding and collectives. Mixed precision, gradient accumulation and
gradient averaging across processes are done here, explicitly, so that the task may call any
sub-module of its model directly (a DDP wrapper would only see ``module(...)`` calls) and so that
the state to save is plain tensors and numbers.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import send_to_device, set_seed
from tqdm.auto import tqdm

from clipsuite.core.checkpoints import atomic_write_json, save_tensors
from clipsuite.core.errors import ClipsuiteError, InputError
from clipsuite.core.train import state as st
from clipsuite.core.train.config import TrainConfig
from clipsuite.core.train.data_plan import make_plan
from clipsuite.core.train.ema import EMA
from clipsuite.core.train.logbook import MetricsLog
from clipsuite.core.train.schedule import build_scheduler

logger = logging.getLogger("clipsuite.core.train")
EMA_FILE = "ema.safetensors"
CONFIG_FILE = "config.json"


@dataclass
class TrainResult:
    output_dir: Path
    step: int                      # optimizer steps done in total
    epoch: float                   # epochs done (fractional when stopped by max_steps)
    metrics: dict[str, float] = field(default_factory=dict)  # last logged train and eval values
    checkpoint: Path | None = None
    resumed_from: int | None = None  # the step a resumed run started from


@dataclass
class _Position:
    step: int = 0
    epoch: int = 0
    batch: int = 0  # micro-batches of ``epoch`` already consumed by this process


def _split_loss(out: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    if isinstance(out, torch.Tensor):
        return out, {"loss": out}
    if isinstance(out, Mapping) and "loss" in out:
        parts = {k: v for k, v in out.items() if isinstance(v, torch.Tensor) and v.numel() == 1}
        return out["loss"], parts
    raise ClipsuiteError("task.loss(batch) must return a tensor or a dict holding 'loss'")


def _no_decay(name: str, param: torch.Tensor) -> bool:
    # as open_clip: no weight decay on gains, biases, norms and the logit scale
    return param.ndim < 2 or any(key in name for key in ("bn", "ln", "bias", "logit_scale"))


class Trainer:
    def __init__(self, task: Any, config: TrainConfig) -> None:
        if not isinstance(getattr(task, "module", None), torch.nn.Module):
            raise ClipsuiteError(f"{type(task).__name__}: a training task needs a 'module' (torch.nn.Module)")
        if not callable(getattr(task, "loss", None)):
            raise ClipsuiteError(f"{type(task).__name__}: a training task needs a 'loss(batch)' method")
        self.task = task
        self.config = config
        self.accelerator: Accelerator | None = None
        self.precision = "fp32"

    # ---- setup ---------------------------------------------------------------------------------
    def _resolve_precision(self, acc: Accelerator) -> str:
        asked, device = self.config.precision, acc.device
        if asked == "auto":
            if device.type != "cuda":
                return "fp32"
            if acc.mixed_precision in ("bf16", "fp16"):  # chosen with `accelerate launch --mixed_precision`
                return acc.mixed_precision
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if asked == "fp16" and device.type != "cuda":
            raise InputError("precision fp16 needs a CUDA GPU (use bf16 or fp32 on the CPU)")
        return asked

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "fp32" or self.accelerator is None:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.accelerator.device.type, dtype=dtype)

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

    # ---- the loop ------------------------------------------------------------------------------
    def fit(self, train_data: Any) -> TrainResult:
        cfg = self.config
        # precision is ours (see autocast); without CUDA, say cpu=True so that a multi-process launch
        # (torchrun / accelerate launch) becomes gloo data parallel instead of N independent runs
        no_accelerator = not torch.cuda.is_available() and not torch.backends.mps.is_available()
        acc = self.accelerator = Accelerator(cpu=no_accelerator)
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if launched > 1 and acc.num_processes != launched:
            raise ClipsuiteError(f"launched as {launched} processes but accelerate sees {acc.num_processes}; "
                                 "check the launcher's settings (accelerate config)")
        self.precision = self._resolve_precision(acc)
        set_seed(cfg.seed)
        module = self.task.module.to(acc.device)
        if cfg.grad_checkpointing:
            self._enable_grad_checkpointing(module)
        if acc.num_processes > 1:  # every process starts from rank 0's weights
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)
        named = {n: p for n, p in module.named_parameters() if p.requires_grad}
        if not named:
            raise ClipsuiteError("nothing to train: the task's module has no parameter with requires_grad=True")
        plan = make_plan(train_data, cfg, getattr(self.task, "collate", None), acc)
        steps_per_epoch = math.ceil(len(plan) / cfg.grad_accum)
        total = cfg.max_steps or cfg.epochs * steps_per_epoch
        optimizer = self._build_optimizer(named)
        scheduler = build_scheduler(optimizer, total, cfg.warmup_steps, cfg.schedule)
        ema = EMA(named, cfg.ema_decay) if cfg.ema_decay else None
        scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        out = cfg.output_dir
        if acc.is_main_process:
            out.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        log = MetricsLog(out, enabled=acc.is_main_process)
        self._parts = (named, optimizer, scheduler, ema, scaler, plan, total)

        pos, resumed_from = _Position(), None
        record = st.read_record(out) if cfg.resume else None
        if record is not None:
            pos = self._restore(record)
            resumed_from = pos.step
            log.reset(keep_until_step=pos.step)
        elif acc.is_main_process:
            st.clear(out)
            log.reset()
            atomic_write_json(out / CONFIG_FILE, {"train": cfg.to_json(), "task": self._task_config()})
        acc.wait_for_everyone()

        bar = tqdm(total=total, initial=pos.step, desc="train", dynamic_ncols=True,
                   disable=not (cfg.progress and acc.is_main_process))
        metrics: dict[str, float] = {}
        window: dict[str, torch.Tensor] = {}
        window_count = 0
        saved_step = pos.step if record is not None else -1
        module.train()
        optimizer.zero_grad(set_to_none=True)
        while pos.step < total:
            n = len(plan)
            for batch in plan.batches(pos.epoch, pos.batch):
                group_start = (pos.batch // cfg.grad_accum) * cfg.grad_accum
                group_size = min(cfg.grad_accum, n - group_start)
                batch = send_to_device(batch, acc.device)
                with self.autocast():
                    loss, parts = _split_loss(self.task.loss(batch))
                scaled = loss.float() / group_size  # the mean over the group, like one big batch
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
                for key, value in parts.items():
                    window[key] = window.get(key, 0.0) + value.detach().float().reshape(())
                window_count += 1
                pos.batch += 1
                if pos.batch - group_start < group_size:
                    continue
                lr = self._optimizer_step()
                pos.step += 1
                bar.update(1)
                if pos.step % cfg.log_every == 0 or pos.step == total:
                    logged = self._log_window(window, window_count, pos, n, lr, log)
                    metrics.update(logged)
                    bar.set_postfix(loss=f"{logged['loss']:.4f}", lr=f"{lr:.2e}")
                    window, window_count = {}, 0
                epoch_end, finished = pos.batch >= n, pos.step >= total
                if epoch_end or finished:  # evaluate at each epoch end, and where max_steps stops
                    metrics.update(self._evaluate(pos, log))
                if epoch_end:
                    pos.epoch, pos.batch = pos.epoch + 1, 0
                every = cfg.checkpoint_every
                if (every and pos.step % every == 0) or (every is None and epoch_end) or finished:
                    self._save(pos)
                    saved_step = pos.step
                if pos.step >= total:
                    break
            else:
                if pos.batch > 0:  # a user DataLoader ran out before its len(): close the epoch
                    optimizer.zero_grad(set_to_none=True)
                    pos.epoch, pos.batch = pos.epoch + 1, 0
        bar.close()
        if saved_step != pos.step:
            self._save(pos)
        if ema is not None:
            ema.copy_to_params()  # after fit the module holds the averaged weights
        acc.wait_for_everyone()
        return TrainResult(output_dir=out, step=pos.step, epoch=pos.epoch + pos.batch / max(1, len(plan)),
                           metrics=metrics, checkpoint=out / st.WEIGHTS_FILE, resumed_from=resumed_from)

    def _optimizer_step(self) -> float:
        named, optimizer, scheduler, ema, scaler, _, _ = self._parts
        params = list(named.values())
        acc = self.accelerator
        assert acc is not None
        if acc.num_processes > 1:
            _average_gradients(params, acc.num_processes)
        if scaler is not None:
            if self.config.max_grad_norm:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
        else:
            if self.config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        after_step = getattr(self.task, "after_step", None)
        if callable(after_step):  # e.g. clamp a logit scale, update an EMA teacher
            with torch.no_grad():
                after_step()
        lr = float(optimizer.param_groups[0]["lr"])
        scheduler.step()
        if ema is not None:
            ema.update()
        return lr

    def _log_window(self, window: dict[str, torch.Tensor], count: int, pos: _Position, n: int, lr: float,
                    log: MetricsLog) -> dict[str, float]:
        acc = self.accelerator
        assert acc is not None
        keys = sorted(window)
        means = torch.stack([window[k] for k in keys]) / max(1, count)
        if acc.num_processes > 1:
            means = acc.reduce(means, reduction="mean")
        values = {k: float(v) for k, v in zip(keys, means.tolist())}
        if not math.isfinite(values.get("loss", 0.0)):
            raise ClipsuiteError(f"training diverged: loss is {values['loss']} at step {pos.step} "
                                 "(lower the learning rate, or train in fp32)")
        log.write({"step": pos.step, "epoch": round(pos.epoch + pos.batch / max(1, n), 4), "lr": lr, **values})
        return values

    def _evaluate(self, pos: _Position, log: MetricsLog) -> dict[str, float]:
        evaluate = getattr(self.task, "evaluate", None)
        acc = self.accelerator
        assert acc is not None
        if not callable(evaluate):
            return {}
        values: dict[str, float] = {}
        if acc.is_main_process:  # evaluation runs once, on the main process
            module = self.task.module
            module.eval()
            with torch.no_grad(), self.autocast():
                values = {f"eval/{k}": float(v) for k, v in (evaluate() or {}).items()}
            module.train()
            if values:
                log.write({"step": pos.step, "epoch": round(pos.epoch + pos.batch / max(1, len(self._parts[5])), 4),
                           **values})
        acc.wait_for_everyone()
        return values

    # ---- checkpoints ---------------------------------------------------------------------------
    def _task_config(self) -> dict[str, Any]:
        config = getattr(self.task, "config", None)
        return dict(config()) if callable(config) else {}

    def _save(self, pos: _Position) -> None:
        named, optimizer, scheduler, ema, scaler, plan, total = self._parts
        acc, out = self.accelerator, self.config.output_dir
        assert acc is not None
        st.save_rng_file(out, pos.step, acc.process_index)
        if acc.is_main_process:
            tensors: dict[str, torch.Tensor] = {f"w.{n}": p for n, p in named.items()}
            tensors.update({f"b.{n}": b for n, b in _buffers(self.task.module).items()})
            opt_tensors, opt_plain = st.optimizer_state(optimizer)
            tensors.update(opt_tensors)
            if ema is not None:
                tensors.update({f"ema.{n}": t for n, t in ema.state_tensors().items()})
            st.save_step_tensors(out, pos.step, tensors, {"step": pos.step})
        acc.wait_for_everyone()
        if acc.is_main_process:
            st.commit(out, {
                "step": pos.step, "epoch": pos.epoch, "batch": pos.batch, "total_steps": total,
                "world_size": acc.num_processes, "batch_size": self.config.batch_size,
                "grad_accum": self.config.grad_accum, "batches_per_epoch": len(plan),
                "optimizer": opt_plain, "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "config": self.config.to_json(),
            })
            task_config = self._task_config()
            save_tensors(out / st.WEIGHTS_FILE, dict(named), task_config)
            if ema is not None:
                save_tensors(out / EMA_FILE, ema.state_tensors(), task_config)
        acc.wait_for_everyone()

    def _restore(self, record: dict[str, Any]) -> _Position:
        named, optimizer, scheduler, ema, scaler, plan, _ = self._parts
        acc, out = self.accelerator, self.config.output_dir
        assert acc is not None
        saved = (record.get("world_size"), record.get("batch_size"), record.get("grad_accum"),
                 record.get("batches_per_epoch"))
        now = (acc.num_processes, self.config.batch_size, self.config.grad_accum, len(plan))
        if saved != now:
            raise ClipsuiteError(
                f"{out / st.STATE_FILE}: cannot resume, the run was saved with processes/batch size/grad accum/"
                f"batches per epoch = {saved} and now they are {now}; use the same data and settings")
        step = int(record["step"])
        tensors = st.load_step_tensors(out, step)
        for name, param in named.items():
            saved_weight = tensors.get(f"w.{name}")
            if saved_weight is None or saved_weight.shape != param.shape:
                raise ClipsuiteError(f"{out / st.step_tensor_file(step)}: cannot resume, trainable parameter "
                                     f"'{name}' is missing or has another shape; the task's model has changed")
            with torch.no_grad():
                param.copy_(saved_weight)
        with torch.no_grad():  # running statistics (BatchNorm) and other persistent buffers
            for name, buffer in _buffers(self.task.module).items():
                saved_buffer = tensors.get(f"b.{name}")
                if saved_buffer is not None and saved_buffer.shape == buffer.shape:
                    buffer.copy_(saved_buffer)
        st.load_optimizer_state(optimizer, {k: v for k, v in tensors.items() if k.startswith("opt.")},
                                record["optimizer"])
        scheduler.load_state_dict(record["scheduler"])
        if scaler is not None and record.get("scaler"):
            scaler.load_state_dict(record["scaler"])
        if ema is not None:
            if not any(k.startswith("ema.") for k in tensors):
                raise ClipsuiteError(f"{out / st.STATE_FILE}: cannot resume with EMA, the run was saved without it")
            ema.load_state_tensors({k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")})
        rng_tensors, rng_plain = st.load_rng_file(out, step, acc.process_index)
        st.set_rng_state(rng_tensors, rng_plain)
        logger.info("resumed from %s at step %d", out, step)
        return _Position(step=step, epoch=int(record["epoch"]), batch=int(record["batch"]))


def _buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's persistent buffers (state_dict entries that are not parameters)."""
    params = {name for name, _ in module.named_parameters()}
    return {n: t for n, t in module.state_dict(keep_vars=True).items() if n not in params}


def _average_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """All-reduce the gradients in one flat buffer (zeros for parameters unused on this process)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for param in params:
        size = param.numel()
        param.grad = flat[offset:offset + size].view_as(param).to(param.dtype)
        offset += size

