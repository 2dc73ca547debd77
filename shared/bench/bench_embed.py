"""Embedding a folder of JPEGs versus a bare open_clip forward loop over the same images in memory.

Three ways over the same N JPEGs with the ``tiny`` model:

- baseline: the images already decoded and preprocessed into one tensor; a plain
  ``model.encode_image`` loop under ``no_grad`` (what the hardware can do, no I/O at all);
- ``ClipModel.encode_images(paths)``: decoding in the calling thread, batch by batch;
- ``embed_images`` (``clipsuite embed``): DataLoader workers decode, embeddings streamed to a shard.

Ratios are times over the baseline's. Then peak RSS of ``embed_images`` in a fresh process for each
folder size (1k -> 10k by default): streaming must keep it flat. With only 2 cores the decode
workers compete with the model for the same CPUs, so the ratio mostly shows the cost of JPEG
decoding + resizing relative to a tiny model's forward pass.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from harness import BenchResult, current_rss_mb, peak_rss_mb
from PIL import Image

BENCH_FILE = Path(__file__).resolve()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="1000,2500,5000,10000", help="folder sizes for the memory curve")
    parser.add_argument("--throughput-n", type=int, default=1000, help="images for the speed comparison")
    parser.add_argument("--image-px", type=int, default=160, help="side of the generated JPEGs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--folder", type=Path, default=None, help="reuse a folder of JPEGs (else a temp one)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the model (default torch's; on a crowded machine 1 is faster)")
    parser.add_argument("--quick", action="store_true", help="sizes 100,200; 100 images for speed")


def write_jpegs(folder: Path, count: int, px: int, seed: int = 0) -> list[Path]:
    """Smooth random colour fields with a few blobs: JPEG-compressible like photos, all different."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    grid = np.linspace(0, 1, px, dtype=np.float32)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    for i in range(count):
        path = folder / f"img{i:06d}.jpg"
        paths.append(path)
        if path.exists():
            continue
        a, b, c = rng.random((3, 3), dtype=np.float32)
        image = np.stack([a[k] * xx + b[k] * yy + c[k] * np.sin(6 * (xx * a[k] + yy * b[k])) for k in range(3)], -1)
        cx, cy, r = rng.random(3)
        image[(xx - cx) ** 2 + (yy - cy) ** 2 < (0.1 + 0.2 * r) ** 2] = rng.random(3)
        image += rng.normal(0, 0.03, image.shape).astype(np.float32)
        Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(path, quality=90)
    return paths


def _throughput(args: argparse.Namespace, paths: list[Path], result: BenchResult) -> None:
    import torch

    from clipsuite.core.embed import EmbedConfig, embed_images
    from clipsuite.core.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clip = load_model(args.model, device="cpu")
    pixels = clip.preprocess_images(paths)  # decoded up front: the baseline does no I/O
    model = clip.model

    def bare_loop() -> None:
        with torch.no_grad():
            for start in range(0, len(pixels), args.batch_size):
                features = model.encode_image(pixels[start:start + args.batch_size])
                torch.nn.functional.normalize(features, dim=-1)

    def encode_images() -> None:
        clip.encode_images(paths, batch_size=args.batch_size)

    out = Path(tempfile.mkdtemp(prefix="bench-embed-"))

    def streaming() -> None:
        embed_images(clip, paths, out, EmbedConfig(batch_size=args.batch_size, num_workers=args.workers,
                                                   progress=False))

    with torch.no_grad():
        model.encode_image(pixels[:args.batch_size])  # warm-up: first-call allocations
    result.params["model_image_size"] = clip.image_size
    for name, fn in (("bare_forward_in_memory", bare_loop), ("encode_images_paths", encode_images),
                     ("embed_images_streaming", streaming)):
        start = time.perf_counter()
        fn()
        result.timings_s[name] = time.perf_counter() - start
    n = len(paths)
    for name in ("bare_forward_in_memory", "encode_images_paths", "embed_images_streaming"):
        result.metrics[f"{name}_images_per_s"] = n / result.timings_s[name]
    result.ratio("encode_images_vs_bare", "encode_images_paths", "bare_forward_in_memory")
    result.ratio("embed_images_vs_bare", "embed_images_streaming", "bare_forward_in_memory")
    result.ratio("embed_images_vs_encode_images", "embed_images_streaming", "encode_images_paths")


def child(folder: Path, count: int, args: argparse.Namespace) -> None:
    """Run in a fresh process: embed the first ``count`` images, print peak RSS as JSON."""
    import torch

    from clipsuite.core.embed import EmbedConfig, embed_images
    from clipsuite.core.models import load_model

    paths = sorted(folder.glob("*.jpg"))[:count]
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clip = load_model(args.model, device="cpu")
    before = peak_rss_mb()
    out = Path(tempfile.mkdtemp(prefix="bench-embed-child-"))
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:  # current RSS over the run: accumulation shows as a rising trend
        while not stop.wait(0.2):
            samples.append(current_rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    embed_images(clip, paths, out, EmbedConfig(batch_size=args.batch_size, num_workers=args.workers, progress=False))
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    half = max(1, len(samples) // 2)
    print(json.dumps({"count": count, "seconds": seconds, "peak_before_mb": before, "peak_mb": peak_rss_mb(),
                      "workers_peak_mb": peak_rss_mb(children=True),
                      "rss_first_half_max_mb": max(samples[:half], default=0.0),
                      "rss_second_half_max_mb": max(samples[half:], default=0.0)}))


def run(args: argparse.Namespace) -> BenchResult:
    if args.quick:
        args.sizes, args.throughput_n = "100,200", 100
    sizes = [int(s) for s in args.sizes.split(",")]
    result = BenchResult("embed", params={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()})
    folder = args.folder or Path(tempfile.mkdtemp(prefix="bench-jpegs-"))
    start = time.perf_counter()
    paths = write_jpegs(folder, max(max(sizes), args.throughput_n), args.image_px)
    result.timings_s["write_jpegs"] = time.perf_counter() - start
    _throughput(args, paths[:args.throughput_n], result)
    peaks = []
    for count in sizes:
        command = [sys.executable, str(BENCH_FILE), "--child", str(folder), str(count), "--batch-size",
                   str(args.batch_size), "--workers", str(args.workers), "--model", args.model,
                   *(["--threads", str(args.threads)] if args.threads else [])]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"child for {count} images failed: {done.stderr.strip().splitlines()[-1:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        peaks.append(row["peak_mb"])
        result.memory_mb[f"peak_rss_main_{count}"] = row["peak_mb"]
        result.memory_mb[f"peak_rss_worker_{count}"] = row["workers_peak_mb"]
        result.timings_s[f"embed_{count}_fresh_process"] = row["seconds"]
        result.memory_mb[f"rss_first_half_max_{count}"] = row["rss_first_half_max_mb"]
        result.memory_mb[f"rss_second_half_max_{count}"] = row["rss_second_half_max_mb"]
    growth = (peaks[-1] - peaks[0]) / max(1, sizes[-1] - sizes[0]) * 1000
    result.metrics["main_peak_rss_slope_mb_per_1k_images"] = growth
    # what keeping the preprocessed pixels would cost, for scale (3 x S x S float32 per image)
    side = int(result.params["model_image_size"])
    per_1k = 1000 * 3 * side * side * 4 / 2**20
    result.metrics["pixels_if_accumulated_mb_per_1k_images"] = per_1k
    # Peak RSS of separate processes varies by ~+-100 MB from run to run (shared-memory batches from
    # the workers, allocator arenas), so the check is the trend WITHIN the largest run: holding on to
    # pixels would add per_1k MB per 1k images to the second half of the run.
    rise = result.memory_mb[f"rss_second_half_max_{sizes[-1]}"] - result.memory_mb[f"rss_first_half_max_{sizes[-1]}"]
    result.metrics["rss_rise_second_half_largest_mb"] = rise
    result.checks["RSS flat within the largest run (rise < 10% of pixel accumulation)"] = (
        rise < 0.1 * per_1k * sizes[-1] / 2000)
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, str(BENCH_FILE.parent))
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        child_args, _ = parser.parse_known_args(sys.argv[4:])
        child(Path(sys.argv[2]), int(sys.argv[3]), child_args)
    else:
        from harness import main

        main(["embed", "--", *sys.argv[1:]])
