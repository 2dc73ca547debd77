"""Anomaly methods: per-image time as a multiple of one plain image-encoder forward, and peak memory.

Same backbone for all (default ViT-B-16-plus-240, random weights, 240 px: WinCLIP's paper setting),
same process for each method and its baseline: every method runs in its own child process that first
times the plain forward (``model.encode_image``) and then the method, so the ratio is measured under the
same load, and the child's peak RSS (CPU) or ``max_memory_allocated`` (GPU) is the method's alone.
``--check`` also compares our WinCLIP(+) with anomalib's ``WinClipModel`` on these weights (the window
permutation fixed as in tests/anomaly/test_winclip_vs_anomalib.py).

    uv run python shared/bench/bench_anomaly.py --check           # the full table (minutes on 2 CPU cores)
    uv run python shared/bench/bench_anomaly.py --model tiny --batch 4 --repeats 2
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

METHODS = ("anomalib_winclip", "anomalib_winclip_fixed", "winclip", "anomalib_winclip_1shot", "winclip_1shot",
           "anomalyclip", "adaptclip", "adaptclip_1shot", "patch_memory_1shot")


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time(fn, pixels: torch.Tensor, repeats: int, device: torch.device, warmup: bool = True,
          ) -> tuple[float, float]:
    """(wall, CPU) seconds per image, each the fastest of ``repeats`` calls. On a CPU shared with other
    jobs, wall time swings with their load; this process's CPU time (with --threads 1) measures the
    method's own compute, so CPU runs take their ratios from it."""
    if warmup:
        fn(pixels)  # allocations, kernels
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        fn(pixels)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall / pixels.shape[0], best_cpu / pixels.shape[0]


def _anomalib(clip, **kwargs):
    from anomalib.models.image.winclip import torch_model

    torch_model.open_clip.create_model_and_transforms = lambda *a, **k: (copy.deepcopy(clip.model), None, None)
    torch_model.tokenize = clip.tokenizer
    return torch_model.WinClipModel(**kwargs).to(clip.device).eval()


class _SequenceFirst(torch.nn.Module):
    """anomalib hands the window batch sequence-first to open_clip's batch-first transformer; this puts it
    back, so windows attend within themselves (as the paper, and as our WinCLIP)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(1, 0, 2)).permute(1, 0, 2)


def _fix_anomalib_windows() -> None:
    from anomalib.models.image.winclip import torch_model

    original = torch_model.WinClipModel._get_window_embeddings
    if getattr(original, "fixed", False):
        return

    def fixed(self, feature_map, masks):
        inner = self.clip.visual.transformer
        self.clip.visual.transformer = _SequenceFirst(inner)
        try:
            return original(self, feature_map, masks)
        finally:
            self.clip.visual.transformer = inner

    fixed.fixed = True
    torch_model.WinClipModel._get_window_embeddings = fixed


def _method(name: str, clip, references: torch.Tensor):
    from clipsuite.anomaly.methods.adaptclip import AdaptClip
    from clipsuite.anomaly.methods.anomalyclip import AnomalyClip
    from clipsuite.anomaly.methods.patch_memory import PatchMemory
    from clipsuite.anomaly.methods.winclip import WinClip

    if name in ("anomalib_winclip", "anomalib_winclip_fixed"):
        if name.endswith("fixed"):
            _fix_anomalib_windows()
        model = _anomalib(clip, class_name="bottle")
        return lambda x: model(x)
    if name == "anomalib_winclip_1shot":
        model = _anomalib(clip, class_name="bottle", reference_images=references)
        return lambda x: model(x)
    if name.startswith("winclip"):
        method = WinClip(clip, class_name="bottle")
        if name.endswith("1shot"):
            method.fit(references)
        return method.predict
    if name == "anomalyclip":
        method = AnomalyClip(clip).eval()
        method.prompts()  # setup: the learned prompts' text embeddings are computed once and cached
        return method.predict
    if name.startswith("adaptclip"):
        method = AdaptClip(clip).eval()
        method.prompts()
        if name.endswith("1shot"):
            method.fit(references)
        return method.predict
    if name == "patch_memory_1shot":
        return PatchMemory(clip).fit(references).predict
    raise SystemExit(f"unknown method {name}")


def child(args: argparse.Namespace) -> dict:
    from clipsuite.core.models import load_model

    torch.set_num_threads(args.threads)
    clip = load_model(args.model, pretrained=args.pretrained, device=args.device)
    size = clip.image_size
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(args.batch, 3, size, size, generator=generator).to(clip.device)
    references = torch.randn(1, 3, size, size, generator=generator).to(clip.device)
    with torch.no_grad():
        fn = _method(args.child, clip, references)
        plain = _time(lambda x: clip.model.encode_image(x), pixels, args.repeats, clip.device)
        method = _time(fn, pixels, args.repeats, clip.device, warmup=not args.no_warmup)
        again = _time(lambda x: clip.model.encode_image(x), pixels, args.repeats, clip.device)
    plain = (min(plain[0], again[0]), min(plain[1], again[1]))
    use = 1 if clip.device.type == "cpu" else 0
    return {"method": args.child, "clock": "cpu" if use else "wall", "plain_forward_s": plain[use],
            "per_image_s": method[use], "ratio": method[use] / plain[use], "wall_plain_s": plain[0],
            "wall_per_image_s": method[0], "peak_mb": _peak_mb(clip.device)}


def check(args: argparse.Namespace) -> dict:
    """Max |ours - anomalib| on the benchmark backbone, zero-shot and 1-shot."""
    from clipsuite.anomaly.methods.winclip import WinClip
    from clipsuite.core.models import load_model

    torch.set_num_threads(args.threads)
    clip = load_model(args.model, pretrained=args.pretrained, device=args.device)
    _fix_anomalib_windows()
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(args.batch, 3, clip.image_size, clip.image_size, generator=generator).to(clip.device)
    references = torch.randn(1, 3, clip.image_size, clip.image_size, generator=generator).to(clip.device)
    out = {}
    for label, refs in (("zero_shot", None), ("one_shot", references)):
        oracle = _anomalib(clip, class_name="bottle", reference_images=refs)
        ours = WinClip(clip, class_name="bottle")
        if refs is not None:
            ours.fit(refs)
        with torch.no_grad():
            expected, got = oracle(pixels), ours.predict(pixels)
        out[label] = {"max_abs_score_diff": float((expected.pred_score - got.scores).abs().max()),
                      "max_abs_map_diff": float((expected.anomaly_map - got.maps).abs().max())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-16-plus-240")
    parser.add_argument("--pretrained", default="none", help="weights (default none: random, enough for speed)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-warmup", action="store_true", help="skip the method's untimed warm-up call "
                        "(the plain forward is still warmed up); for slow CPU runs")
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--check", action="store_true", help="also compare with anomalib on this backbone")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "anomaly.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--check-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.check_child:
        print(json.dumps(check(args)))
        return
    common = ["--model", args.model, "--pretrained", args.pretrained, "--device", args.device,
              "--batch", str(args.batch), "--repeats", str(args.repeats), "--threads", str(args.threads),
              *(["--no-warmup"] if args.no_warmup else [])]
    rows = []
    for name in args.methods:
        done = subprocess.run([sys.executable, __file__, "--child", name, *common], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        print(f"{name:24s} {row['per_image_s'] * 1000:9.1f} ms/img  {row['ratio']:6.2f}x plain forward  "
              f"peak {row['peak_mb']:7.0f} MB", flush=True)
    result = {"model": args.model, "device": args.device, "batch": args.batch, "threads": args.threads, "rows": rows}
    by_name = {r["method"]: r for r in rows}
    for ours, theirs in (("winclip", "anomalib_winclip"), ("winclip", "anomalib_winclip_fixed"),
                         ("winclip_1shot", "anomalib_winclip_1shot")):
        if ours in by_name and theirs in by_name:
            key = f"{ours}_vs_{theirs}"
            result[key] = by_name[ours]["ratio"] / by_name[theirs]["ratio"]
            print(f"{ours} / {theirs}: {result[key]:.2f}x")
    if args.check:
        done = subprocess.run([sys.executable, __file__, "--check-child", *common], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise SystemExit(f"check failed:\n{done.stderr[-2000:]}")
        result["agreement"] = json.loads(done.stdout.strip().splitlines()[-1])
        print("agreement with anomalib:", result["agreement"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
