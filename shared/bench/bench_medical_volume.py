"""Volume -> prediction throughput against the image encoder alone (issue 5: ratio >= 0.8).

Pipeline (what ``clipsuite-medical classify VOLUME`` does per volume): read the NIfTI from disk
(stored LPS, so it is reoriented to RAS), cut ``--slices`` evenly spaced axial slices, window them
(``--mode windows``: soft tissue, lung, bone as RGB), resize and normalise in torch, encode, score
against a text classifier and aggregate. Baseline: the same encoder on the same number of preloaded,
already preprocessed pixel tensors. Ratio = pipeline slices/s divided by encoder slices/s.

    uv run python shared/bench/run.py medical_volume                      # ViT-B-16 (random), 512x512x64
    uv run python shared/bench/run.py medical_volume -- --model tiny --shape 128,128,32 --slices 16
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness import BenchResult, median_time


def _cpu_time(fn: object, repeat: int) -> float:
    """Median CPU seconds of this process per call (after one untimed call)."""
    fn()  # type: ignore[operator]
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()  # type: ignore[operator]
        times.append(time.process_time() - start)
    return sorted(times)[len(times) // 2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="ViT-B-16", help="open_clip name (random init) or tiny")
    parser.add_argument("--shape", default="512,512,64", help="volume shape X,Y,Z (a typical CT series)")
    parser.add_argument("--slices", type=int, default=32, help="slices per volume")
    parser.add_argument("--mode", default="windows", choices=["slice", "2.5d", "windows"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> BenchResult:
    import numpy as np
    import torch

    from clipsuite.core.models import load_model
    from clipsuite.medical import synthetic
    from clipsuite.medical.classify import VolumeOptions, classify_volume, make_classifier, volume_pixels
    from clipsuite.medical.volumes import load_volume

    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(int(v) for v in args.shape.split(","))
    torch.manual_seed(0)
    clip = load_model(args.model, device=args.device)
    classes = ["normal", "tumor", "cyst"]
    classifier = make_classifier(clip, classes).to(clip.device)
    options = VolumeOptions(n=args.slices, mode=args.mode)
    result = BenchResult("medical_volume", params={"model": args.model, "shape": list(shape), "slices": args.slices,
                                                   "mode": args.mode, "device": str(clip.device),
                                                   "threads": torch.get_num_threads()})
    with tempfile.TemporaryDirectory() as tmp:
        hu = synthetic.phantom_volume("chest", "tumor", "left", shape, seed=0)  # type: ignore[arg-type]
        path = synthetic.write_nifti(Path(tmp) / "ct.nii.gz", hu.astype(np.float32), orientation="LPS")
        volume = load_volume(path)
        pixels, _ = volume_pixels(clip, volume, options)
        pixels = pixels.to(clip.device)

        def sync() -> None:
            if clip.device.type == "cuda":
                torch.cuda.synchronize(clip.device)

        def encoder_only() -> None:
            for start in range(0, len(pixels), args.batch):
                clip.encode_image_tensor(pixels[start:start + args.batch])
            sync()

        def pipeline() -> None:
            vol = load_volume(path)
            classify_volume(clip, vol, classes, classifier, options, batch_size=args.batch)
            sync()

        def preprocessing_only() -> None:
            volume_pixels(clip, load_volume(path), options)

        cpu = time.process_time()
        for name, fn in (("encoder", encoder_only), ("pipeline", pipeline), ("preprocess", preprocessing_only)):
            result.timings_s[f"{name}_per_slice"] = median_time(fn, args.repeat) / args.slices
            result.timings_s[f"{name}_cpu_per_slice"] = _cpu_time(fn, args.repeat) / args.slices
        result.timings_s["process_cpu_total"] = time.process_time() - cpu
    # On a shared CPU, wall time swings with other jobs' load; this process's CPU time measures its
    # own work, so CPU runs take the ratio from it (GPU runs from wall time).
    key = "_cpu_per_slice" if result.params["device"] == "cpu" else "_per_slice"
    enc, pipe = result.timings_s[f"encoder{key}"], result.timings_s[f"pipeline{key}"]
    result.metrics["encoder_slices_per_s"] = 1.0 / enc
    result.metrics["pipeline_slices_per_s"] = 1.0 / pipe
    result.ratios["throughput_pipeline_vs_encoder"] = enc / pipe
    result.ratio("preprocess_vs_encoder_time", f"preprocess{key}", f"encoder{key}")
    result.checks["pipeline_at_least_0.8_of_encoder"] = enc / pipe >= 0.8
    result.notes.append("pipeline = NIfTI read + RAS reorientation + windows + resize/normalise + encode + "
                        "classify + aggregate; baseline = encode preloaded pixels")
    return result
