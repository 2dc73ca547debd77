"""Training throughput of the MLP brain decoder (samples/s) on the core Trainer, against a bare torch
loop over the same module, data, optimizer and loss in the same run (the Trainer's overhead).

Inputs are `small`-sized: CLIP targets of the `small` config's width (128), a few thousand voxels.
Each run has one BiMixCo epoch and the rest SoftCLIP (MindEye's schedule).

    uv run python shared/bench/run.py brain_decoder                       # 4000 voxels, 2000 samples
    uv run python shared/bench/run.py brain_decoder -- --voxels 15724 --hidden 4096   # NSD subj01 size (GPU)
    uv run python shared/bench/run.py brain_decoder -- --vae-latent 256                # the VAE variant
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from harness import BenchResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--voxels", type=int, default=4000)
    parser.add_argument("--embed-dim", type=int, default=128, help="the `small` config's embed_dim")
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--vae-latent", type=int, default=0, help="> 0: the VAE variant with this code width")


def _parts(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    import torch

    from clipsuite.brain.losses import LossSchedule
    from clipsuite.brain.methods.mlp import BrainMLP, MLPConfig
    from clipsuite.brain.train import DecoderDataset, DecoderObjective
    from clipsuite.core.train import TrainConfig

    rng = np.random.default_rng(0)
    data = DecoderDataset(rng.normal(size=(args.samples, args.voxels)).astype(np.float32),
                          {s: rng.normal(size=(args.samples, args.embed_dim)).astype(np.float32)
                           for s in ("image", "text")})
    cfg = TrainConfig(output_dir=tempfile.mkdtemp(prefix="bench-brain-"), epochs=args.epochs,
                      batch_size=args.batch_size, lr=3e-4, precision=args.precision, checkpoint_every=0,
                      progress=False, log_every=50)
    torch.manual_seed(0)
    model = BrainMLP(MLPConfig(args.voxels, args.embed_dim, hidden=args.hidden, blocks=args.blocks,
                               vae_latent=args.vae_latent))
    objective = DecoderObjective(model, LossSchedule(args.epochs), 1.0, kl_weight=1e-3, recon_weight=0.1)
    return data, cfg, objective


def _bare(args: argparse.Namespace) -> float:
    """The same epochs as a plain loop: shuffled batches, AdamW, the objective's forward, backward."""
    import torch

    from clipsuite.core.train.task import RunSteps

    data, cfg, objective = _parts(args)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    objective.to(device)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=cfg.lr)
    voxels = data.voxels.to(device)
    targets = {k: v.to(device) for k, v in data.targets.items()}
    amp = device.type == "cuda" and args.precision != "fp32"
    per_epoch = -(-len(voxels) // args.batch_size)  # the plain loop's own count (one process, no accumulation)
    objective.start(RunSteps(args.epochs * per_epoch, per_epoch))
    start = time.perf_counter()
    for _ in range(args.epochs):
        order = torch.randperm(len(voxels), device=device)
        for i in range(0, len(order), args.batch_size):
            rows = order[i:i + args.batch_size]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = objective({"voxels": voxels[rows], **{k: v[rows] for k, v in targets.items()}})["loss"]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            objective.steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _trainer(args: argparse.Namespace) -> float:
    from clipsuite.brain.train import DecoderTask
    from clipsuite.core.train import Trainer

    data, cfg, objective = _parts(args)
    start = time.perf_counter()
    Trainer(DecoderTask(objective), cfg).fit(data)
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> BenchResult:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result = BenchResult("brain_decoder", params=vars(args).copy())
    _bare(argparse.Namespace(**{**vars(args), "epochs": 1, "samples": min(args.samples, 256)}))  # warm-up
    result.timings_s["bare_loop"] = _bare(args)
    result.timings_s["trainer"] = _trainer(args)
    samples = args.samples * args.epochs
    result.metrics["trainer_samples_per_s"] = samples / result.timings_s["trainer"]
    result.metrics["bare_loop_samples_per_s"] = samples / result.timings_s["bare_loop"]
    result.ratio("trainer_time_over_bare_loop", "trainer", "bare_loop")
    result.notes.append(f"device: {'cuda' if torch.cuda.is_available() else 'cpu'}; the Trainer also reads "
                        "each sample through its seeded Dataset order and logs JSONL")
    return result
