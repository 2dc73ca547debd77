"""Step time and peak memory of the core Trainer (accelerate: prepare/accumulate/backward, DDP when
several processes) against the loop it replaced, on the same commit, model, data and settings.

The baseline ("old") is the hand-rolled loop the Trainer used before it moved onto accelerate, copied
here and only here: the module moved to the device by hand, every loss computed by calling the task
directly under its own autocast, and, with several processes, one flat float32 copy of every
gradient all-reduced after backward (no overlap, twice the gradient memory).

Both train the contrastive task (CLIP loss) on the same in-memory batches of random images and
captions, read by the same DataLoader. Step time is the median time between optimizer steps after
``--warmup`` steps (taken in ``after_step``, so setup and checkpoint writing are excluded). Peak
memory is CUDA's peak allocation per run on a GPU; on the CPU each run goes in a forked child and the
figure is the growth of its resident memory during training (sampled every step).

    uv run python shared/bench/run.py trainer                                   # CPU: tiny, 12 steps
    uv run python shared/bench/run.py trainer -- --model small --steps 300 --precision amp_bf16 --batch-size 64
    torchrun --nproc_per_node 2 shared/bench/run.py trainer -- --model small --steps 300   # DDP
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from harness import BenchResult, current_rss_mb

from clipsuite.core.contrastive import ContrastiveConfig, ContrastiveTask
from clipsuite.core.models import load_model
from clipsuite.core.precision import resolve_precision
from clipsuite.core.train import TrainConfig, Trainer
from clipsuite.core.train.schedule import build_scheduler


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="default: small on a GPU, tiny on the CPU")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the step time")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")


class Pairs(torch.utils.data.Dataset):
    """Random images and random caption tokens: the cost of the model, not of decoding."""

    def __init__(self, n: int, image_size: int, context: int, vocab: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, image_size, image_size, generator=g)
        self.texts = torch.randint(1, vocab - 1, (n, context), generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "text": self.texts[i]}


class TimedTask(ContrastiveTask):
    """The contrastive task noting the time (and the memory, on the CPU) of every optimizer step."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamps: list[float] = []
        self.rss: list[float] = []

    def after_step(self) -> None:
        super().after_step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())
        self.rss.append(current_rss_mb())


# ---- the loop the Trainer replaced (baseline only) ------------------------------------------------
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


def _no_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim < 2 or any(key in name for key in ("bn", "ln", "bias", "logit_scale"))


def old_loop(task: TimedTask, loader: torch.utils.data.DataLoader, cfg: TrainConfig, device: torch.device) -> None:
    module = task.module.to(device)
    world = dist.get_world_size() if dist.is_initialized() else 1
    if world > 1:  # every process starts from rank 0's weights
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)
    named = {n: p for n, p in module.named_parameters() if p.requires_grad}
    params = list(named.values())
    decay = [p for n, p in named.items() if not _no_decay(n, p)]
    plain = [p for n, p in named.items() if _no_decay(n, p)]
    groups = [g for g in ({"params": decay, "weight_decay": cfg.weight_decay},
                          {"params": plain, "weight_decay": 0.0}) if g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
    scheduler = build_scheduler(optimizer, cfg.max_steps or 1, cfg.warmup_steps, cfg.schedule)
    precision = resolve_precision(cfg.precision, device)
    scaler = torch.amp.GradScaler("cuda") if precision.needs_grad_scaler else None
    module.train()
    optimizer.zero_grad(set_to_none=True)
    step, seen = 0, 0
    while step < (cfg.max_steps or 1):
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            with precision.autocast():
                loss = task.loss(batch)["loss"]
            scaled = loss.float() / cfg.grad_accum
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            seen += 1
            if seen % cfg.grad_accum:
                continue
            if world > 1:
                _average_gradients(params, world)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                task.after_step()
            scheduler.step()
            step += 1
            if step >= (cfg.max_steps or 1):
                return


# ---- measuring --------------------------------------------------------------------------------------
def _one_run(kind: str, args: argparse.Namespace, model: str) -> dict[str, float]:
    torch.manual_seed(0)
    clip = load_model(model, device="cpu")
    task = TimedTask(clip, ContrastiveConfig())
    data = Pairs(args.batch_size * args.grad_accum * (args.steps + 1), clip.image_size, clip.context_length,
                 int(clip.model_cfg["text_cfg"]["vocab_size"]))
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size, shuffle=False)
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        cfg = TrainConfig(output_dir=Path(tmp), max_steps=args.steps, batch_size=args.batch_size, lr=1e-4,
                          grad_accum=args.grad_accum, precision=args.precision, schedule="constant",
                          checkpoint_every=0, log_every=args.steps, progress=False)
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        start_rss = current_rss_mb()
        if kind == "new":
            Trainer(task, cfg).fit(loader)
        else:
            from accelerate import PartialState

            old_loop(task, loader, cfg, PartialState(cpu=not cuda).device)
    gaps = [b - a for a, b in zip(task.stamps, task.stamps[1:])][max(0, args.warmup - 1):]
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else max(task.rss) - start_rss
    return {"step_s": statistics.median(gaps), "peak_mb": peak}


def _in_child(run: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Run in a forked child so its memory growth is its own (CPU only)."""
    context = multiprocessing.get_context("fork")
    step_s, peak_mb = context.Value("d", float("nan")), context.Value("d", float("nan"))

    def target() -> None:
        figures = run()
        step_s.value, peak_mb.value = figures["step_s"], figures["peak_mb"]

    process = context.Process(target=target)
    process.start()
    process.join()
    if process.exitcode != 0:
        raise SystemExit(f"bench trainer: a measured run failed (exit code {process.exitcode})")
    return {"step_s": step_s.value, "peak_mb": peak_mb.value}


def run(args: argparse.Namespace) -> BenchResult:
    cuda = torch.cuda.is_available()
    model = args.model or ("small" if cuda else "tiny")
    if not cuda:
        torch.set_num_threads(args.threads)
    result = BenchResult("trainer", params={"model": model, "steps": args.steps, "warmup": args.warmup,
                                            "batch_size": args.batch_size, "grad_accum": args.grad_accum,
                                            "precision": args.precision, "device": "cuda" if cuda else "cpu",
                                            "processes": dist.get_world_size() if dist.is_initialized() else 1})
    if args.steps <= args.warmup + 1:
        raise SystemExit("--steps must exceed --warmup + 1")
    figures = {}
    for kind in ("old", "new"):
        measure = lambda kind=kind: _one_run(kind, args, model)  # noqa: E731
        figures[kind] = measure() if cuda or dist.is_initialized() else _in_child(measure)
    for kind, values in figures.items():
        result.timings_s[f"step_{kind}"] = values["step_s"]
        result.memory_mb[f"peak_{kind}"] = values["peak_mb"]
    result.ratio("step_time_new_over_old", "step_new", "step_old")
    if figures["old"]["peak_mb"] > 0:
        result.ratios["peak_memory_new_over_old"] = figures["new"]["peak_mb"] / figures["old"]["peak_mb"]
    result.notes.append("old = the pre-accelerate loop (flat fp32 all-reduce after backward), kept in this script only")
    if not cuda:
        result.notes.append("CPU: peak = growth of a forked child's resident memory during training")
    return result
