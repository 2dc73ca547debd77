"""shared/bench/bench_generative.py runs at its smallest setting, and its agreement check can fail."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"
SMALLEST = ["--parts", "micro", "--size", "32x24", "--steps", "2", "--repeat", "1",
            "--variants", "plain,bf16,diffusers_inpaint"]


@pytest.fixture()
def harness():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))
    try:
        import harness as module

        yield module
    finally:
        sys.path.remove(str(BENCH))


def test_generative_benchmark_smallest_run(harness, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    [result] = harness.run_benchmarks(["generative"], SMALLEST, tmp_path)
    saved = json.loads((tmp_path / "generative.json").read_text())
    assert saved["benchmark"] == "generative" and saved["machine"]["nproc"] >= 1
    assert saved["params"] == {"parts": "micro", "size": "32x24", "steps": 2, "guidance": 7.5, "repeat": 1,
                               "device": "cpu", "threads": 1}
    # our pipeline with zero-initialised extra channels paints exactly what diffusers' inpainting pipeline paints
    assert saved["checks"]["same_image_as_diffusers_inpaint"] is True
    assert saved["metrics"]["ours_vs_diffusers_max_abs_diff"] < 1e-3
    for name in ("plain", "bf16", "diffusers_inpaint"):
        assert saved["timings_s"][f"{name}/s_per_image"] > 0 and saved["memory_mb"][f"{name}/peak"] > 0
    ratio = saved["ratios"]["time_ours_over_diffusers_inpaint"]
    timings = result.timings_s
    assert ratio == pytest.approx(timings["plain/s_per_image"] / timings["diffusers_inpaint/s_per_image"])
    assert set(saved["ratios"]) == {"time_bf16_over_plain", "memory_bf16_over_plain",
                                    "time_ours_over_diffusers_inpaint", "memory_ours_over_diffusers_inpaint"}


def test_agreement_sees_a_difference_in_the_extra_conditioning(harness, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With the widened channels' weights no longer zero, the pose and garment change the image, and the
    comparison with diffusers (which has no such inputs) says so: the check is not vacuous."""
    module = harness._load(BENCH / "bench_generative.py")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    args = parser.parse_args(SMALLEST)
    mine = module.ours(args, {}, torch.device("cpu"))
    assert module.agreement(args, torch.device("cpu"), tmp_path / "same", mine) < 1e-3
    with torch.no_grad():
        mine.unet.unet.conv_in.weight[:, 9:] = 0.05
    assert module.agreement(args, torch.device("cpu"), tmp_path / "widened", mine) > 1e-2


def test_size_must_be_multiples_of_eight(harness) -> None:  # type: ignore[no-untyped-def]
    module = harness._load(BENCH / "bench_generative.py")
    with pytest.raises(SystemExit, match="multiples of 8"):
        module.parse_size("30x24")
    with pytest.raises(SystemExit, match="HxW"):
        module.parse_size("big")
