"""Try-on inference: time and peak memory per image with each memory option against the plain
pipeline, and our try-on pipeline against diffusers' own ``StableDiffusionInpaintPipeline`` on the
same parts.

Every variant runs the same seeded diffusion parts (``--parts``: micro, tiny, or the SD-2-inpainting
shapes with random weights) on one synthetic VITON-HD person at ``--size``, ``--steps`` DDIM steps,
classifier-free guidance 7.5, the same prompt states (random, seeded: the text encoder is not part of
either loop). Variants:

- ``plain``: ``TryOnPipeline`` in fp32, no option (no EMASC, no warper: the conditioning alone);
- ``fp16`` / ``bf16``: weights cast (skipped with a note where the device has no kernels for it);
- ``attention_slicing``; ``cpu_offload`` (model-level; on the CPU it has nothing to offload);
- ``full``: plain plus EMASC decode and the garment warper (the whole try-on model);
- ``diffusers_inpaint``: ``StableDiffusionInpaintPipeline`` with the same UNet before widening (9
  input channels), VAE and scheduler, given image + mask as a user would (it encodes the masked person
  itself; ours also encodes the garment and adds 22 input channels).

Time per image is the median of ``--repeat`` runs after one warm-up. Peak memory on the CPU: each
variant runs in a forked child; the figure is the child's peak resident memory (``VmHWM``, reset
through ``/proc/self/clear_refs`` after the imports) during inference, above its resident memory
before the parts were built: weights plus working memory. On a GPU: ``max_memory_allocated``.

Agreement check: the widened UNet's new weights are zero, so with the masked person's latents given
to diffusers (``masked_image_latents``; it would otherwise *sample* them from the VAE posterior where
we take the mode) and no paste-back, both pipelines must produce the same image.

    uv run python shared/bench/run.py generative                           # CPU: tiny parts, 64x48, 10 steps
    uv run python shared/bench/run.py generative -- --parts sd2-inpainting-random --size 512x384 \
        --steps 50 --device cuda
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
from harness import BenchResult, current_rss_mb

from clipsuite.generative import synthetic
from clipsuite.generative.components import SIZES, DiffusionParts, build_parts
from clipsuite.generative.data import VitonHD
from clipsuite.generative.methods.emasc import EMASC
from clipsuite.generative.methods.tryon_unet import TryOnUNet
from clipsuite.generative.methods.warping import GarmentWarper
from clipsuite.generative.pipeline import MemoryOptions, SamplingOptions, TryOnPipeline

GUIDANCE = 7.5
PROMPT_TOKENS = 16
OURS: dict[str, dict[str, Any]] = {  # variant -> MemoryOptions fields (and whether the whole model runs)
    "plain": {}, "fp16": {"precision": "fp16"}, "bf16": {"precision": "bf16"},
    "attention_slicing": {"attention_slicing": True}, "cpu_offload": {"cpu_offload": True},
    "full": {"full": True},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", default="tiny", choices=sorted(SIZES))
    parser.add_argument("--size", default="64x48", help="person image HxW (multiple of 8)")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps per image")
    parser.add_argument("--repeat", type=int, default=3, help="timed images per variant (median)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (both sides alike)")
    parser.add_argument("--variants", default=",".join([*OURS, "diffusers_inpaint"]),
                        help="comma-separated subset to run")


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size '{text}': expected HxW, e.g. 64x48") from None
    if h % 8 or w % 8 or h <= 0 or w <= 0:
        raise SystemExit(f"--size '{text}': both sides must be positive multiples of 8")
    return h, w


# ---- the inputs, identical for every variant --------------------------------------------------------
def make_batch(size: tuple[int, int], folder: Path) -> dict[str, torch.Tensor]:
    """One synthetic VITON-HD person, batched."""
    root = synthetic.make_vitonhd(folder, n_train=0, n_test=1, size=size, seed=0)
    sample = VitonHD(root, "test", size=size)[0]
    sample.pop("index")
    return {k: v[None] for k, v in sample.items()}


def make_states(args: argparse.Namespace) -> torch.Tensor:
    """Seeded prompt states ``[2, L, D]``: (empty prompt as zeros, prompt)."""
    g = torch.Generator().manual_seed(0)
    dim = int(SIZES[args.parts][0]["cross_attention_dim"])
    return torch.stack([torch.zeros(PROMPT_TOKENS, dim), torch.randn(PROMPT_TOKENS, dim, generator=g)])


def _parts(args: argparse.Namespace) -> DiffusionParts:
    return build_parts(args.parts, seed=0)


def ours(args: argparse.Namespace, options: dict[str, Any], device: torch.device) -> TryOnPipeline:
    options = dict(options)
    full = options.pop("full", False)
    parts = _parts(args)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        emasc = EMASC(parts.vae.config) if full else None
        warper = GarmentWarper(parse_size(args.size)) if full else None
    return TryOnPipeline(parts, TryOnUNet(parts.unet), emasc, warper, device=device, memory=MemoryOptions(**options))


def diffusers_pipeline(args: argparse.Namespace, device: torch.device) -> Any:
    from diffusers import StableDiffusionInpaintPipeline

    parts = _parts(args)
    pipe = StableDiffusionInpaintPipeline(vae=parts.vae, text_encoder=None, tokenizer=None, unet=parts.unet,
                                          scheduler=parts.scheduler, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def run_ours(pipe: TryOnPipeline, batch: dict[str, torch.Tensor], states: torch.Tensor, steps: int,
             keep_unmasked: bool = True) -> torch.Tensor:
    options = SamplingOptions(steps=steps, guidance=GUIDANCE, seed=0, keep_unmasked=keep_unmasked)
    return pipe(batch, states[1:], states[:1], options)["image"]


def run_diffusers(pipe: Any, batch: dict[str, torch.Tensor], states: torch.Tensor, steps: int,
                  masked_latents: torch.Tensor | None = None) -> torch.Tensor:
    """Image in [-1, 1], as ours returns it (diffusers takes tensors in [0, 1])."""
    h, w = batch["image"].shape[-2:]
    dtype, device = pipe.unet.dtype, pipe.unet.device
    out = pipe(prompt_embeds=states[1:].to(device, dtype), negative_prompt_embeds=states[:1].to(device, dtype),
               image=(batch["image"] + 1) / 2, mask_image=batch["mask"], masked_image_latents=masked_latents,
               height=h, width=w,
               num_inference_steps=steps, guidance_scale=GUIDANCE, generator=torch.Generator("cpu").manual_seed(0),
               output_type="pt").images
    return out.float().cpu() * 2 - 1


# ---- measuring ----------------------------------------------------------------------------------------
def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:  # "5": reset the peak RSS (Linux >= 4.0)
        handle.write("5")


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(variant: str, args: argparse.Namespace, device: torch.device, folder: Path) -> dict[str, float]:
    """Seconds per image (median) and peak memory (MB) of one variant, in this process."""
    cuda = device.type == "cuda"
    batch, states = make_batch(parse_size(args.size), folder), make_states(args)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = current_rss_mb()
    if variant == "diffusers_inpaint":
        pipe = diffusers_pipeline(args, device)
        once: Callable[[], Any] = lambda: run_diffusers(pipe, batch, states, args.steps)  # noqa: E731
    else:
        pipe = ours(args, OURS[variant], device)
        once = lambda: run_ours(pipe, batch, states, args.steps)  # noqa: E731
    once()  # warm-up (also the first allocation of every workspace)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        _reset_peak()
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        once()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _peak_rss_mb()
    return {"s_per_image": statistics.median(times), "peak_mb": peak - base}


def _in_child(run: Callable[[], dict[str, float]]) -> dict[str, float] | str:
    """Run in a forked child so its memory is its own (CPU). Returns the figures or the child's error."""
    context = multiprocessing.get_context("fork")
    queue = context.SimpleQueue()

    def target() -> None:
        try:
            queue.put(run())
        except RuntimeError as error:  # e.g. no fp16 kernel for an op on this CPU: reported, not fatal
            queue.put(f"{type(error).__name__}: {str(error).splitlines()[0]}")

    process = context.Process(target=target)
    process.start()
    process.join()
    if process.exitcode != 0 or queue.empty():
        raise SystemExit(f"bench generative: a measured run failed (exit code {process.exitcode})")
    return queue.get()  # type: ignore[no-any-return]


def agreement(args: argparse.Namespace, device: torch.device, folder: Path,
              mine: TryOnPipeline | None = None) -> float:
    """Max |ours - diffusers| over the image when both see the same masked-person latents (see top)."""
    batch, states = make_batch(parse_size(args.size), folder), make_states(args)
    mine = mine or ours(args, {}, device)
    theirs = diffusers_pipeline(args, device)
    latents = mine._encode(batch["masked_image"])
    a = run_ours(mine, batch, states, args.steps, keep_unmasked=False)
    b = run_diffusers(theirs, batch, states, args.steps, masked_latents=latents)
    return float((a.cpu() - b).abs().max())


def run(args: argparse.Namespace) -> BenchResult:
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # its note on casting a VAE without fp32-kept modules, per variant
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in OURS and v != "diffusers_inpaint"]
    if unknown or "plain" not in variants:
        raise SystemExit(f"--variants: unknown {unknown} (and 'plain', the baseline, is required)" if unknown
                         else "--variants: 'plain' (the baseline) is required")
    h, w = parse_size(args.size)
    result = BenchResult("generative", params={"parts": args.parts, "size": f"{h}x{w}", "steps": args.steps,
                                               "guidance": GUIDANCE, "repeat": args.repeat, "device": device.type,
                                               "threads": torch.get_num_threads() if device.type == "cpu" else None})
    with tempfile.TemporaryDirectory(prefix="bench-generative-") as tmp:
        for variant in variants:
            measure_one = lambda v=variant: measure(v, args, device, Path(tmp) / v)  # noqa: E731
            figures = measure_one() if device.type == "cuda" else _in_child(measure_one)
            if isinstance(figures, str):
                result.notes.append(f"{variant}: not run on {device.type} ({figures})")
                continue
            result.timings_s[f"{variant}/s_per_image"] = figures["s_per_image"]
            result.memory_mb[f"{variant}/peak"] = figures["peak_mb"]
        max_diff = agreement(args, device, Path(tmp) / "agreement")
    result.metrics["ours_vs_diffusers_max_abs_diff"] = max_diff
    result.checks["same_image_as_diffusers_inpaint"] = max_diff < 1e-3
    base_mem = result.memory_mb["plain/peak"]
    for variant in variants:
        if variant == "plain" or f"{variant}/s_per_image" not in result.timings_s:
            continue
        if variant == "diffusers_inpaint":
            result.ratio("time_ours_over_diffusers_inpaint", "plain/s_per_image", "diffusers_inpaint/s_per_image")
            theirs = result.memory_mb["diffusers_inpaint/peak"]
            if theirs > 0:
                result.ratios["memory_ours_over_diffusers_inpaint"] = base_mem / theirs
            continue
        result.ratio(f"time_{variant}_over_plain", f"{variant}/s_per_image", "plain/s_per_image")
        if base_mem > 0:
            result.ratios[f"memory_{variant}_over_plain"] = result.memory_mb[f"{variant}/peak"] / base_mem
    if device.type == "cpu":
        result.notes.append(f"CPU, {args.threads} torch thread(s) for every variant; peak = a forked child's peak "
                            "RSS during inference above its RSS before the parts were built")
        result.notes.append("cpu_offload moves nothing on the CPU (parts already live there): its ratio is ~1 "
                            "by construction")
    result.notes.append("agreement: widened UNet's new weights zero, same masked-person latents, no paste-back")
    return result
