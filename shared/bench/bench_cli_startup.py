"""CLI start-up (``--help``) and time-to-error (a missing input file) for each installed app, as ratios
against ``python -c "import torch"`` measured in the same run; and the mistakes issue 17 lists (a band the
raster lacks, a corrupt TIFF, an empty folder, a bad --resolution, a tile larger than the raster, a mask/betas
grid mismatch, an unreadable person picture, malformed keypoint JSON, an uncached model offline) as ratios
against ``python -c "import torch, open_clip"`` (target: each under 0.2).

Each figure is the median wall time of a fresh process (``python -m <app module> ...``), since start-up
is what a person waits for. A ratio below 1 means the command answers before torch could even be
imported; the issue's goal is a wrong flag or missing file answered in well under the time torch takes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import BenchResult

MISSING = "/nonexistent/clipsuite-bench/x.png"
# app module -> one command given a missing input (every app has one)
APPS = {
    "clipsuite": ("clipsuite.cli.main", ["zeroshot", MISSING, "--classes", "a,b"]),
    "clipsuite-anomaly": ("clipsuite.anomaly_app.main", ["detect", MISSING]),
    "clipsuite-medical": ("clipsuite.medical_app.main", ["classify", MISSING, "--classes", "a,b"]),
    "clipsuite-remote": ("clipsuite.remote_app.main", ["search", "/nonexistent/index", "a"]),
    "clipsuite-brain": ("clipsuite.brain_app.main", ["decode", "/nonexistent/betas.nii.gz"]),
    "clipsuite-generative": ("clipsuite.generative_app.main", ["tryon", "--person", MISSING, "--garment", MISSING,
                                                               "--mask", MISSING, "-o", "/tmp/clipsuite-bench.png"]),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per figure (median)")


MISTAKE_TARGET = 0.2  # issue 17: each mistake answered in under 0.2x of `import torch, open_clip`


def _time(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(repeat + 1):  # the first run warms the file cache, untimed
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False,
                              env=None if env is None else {**os.environ, **env})
        times.append(time.perf_counter() - start)
        code = done.returncode
    return statistics.median(times[1:]), code


def run(args: argparse.Namespace) -> BenchResult:
    result = BenchResult("cli_startup", params={"repeat": args.repeat})
    python = sys.executable
    result.timings_s["import_torch"], _ = _time([python, "-c", "import torch"], args.repeat)
    for app, (module, error_argv) in APPS.items():
        if importlib.util.find_spec(module) is None:
            result.notes.append(f"{app}: not installed ({module})")
            continue
        result.timings_s[f"{app} --help"], help_code = _time([python, "-m", module, "--help"], args.repeat)
        result.ratio(f"{app} --help / import torch", f"{app} --help", "import_torch")
        if error_argv:
            key = f"{app} {error_argv[0]} missing file"
            result.timings_s[key], code = _time([python, "-m", module, *error_argv], args.repeat)
            result.ratio(f"{key} / import torch", key, "import_torch")
            result.checks[f"{app}: missing file exits 2"] = code == 2
            result.checks[f"{app}: missing file answered faster than import torch"] = (
                result.timings_s[key] < result.timings_s["import_torch"])
        result.checks[f"{app}: --help exits 0"] = help_code == 0
    with tempfile.TemporaryDirectory(prefix="clipsuite-bench-mistakes-") as folder:
        _mistakes(result, Path(folder), args.repeat)
    return result


def _mistake_inputs(root: Path) -> dict[str, tuple[str, list[str]]]:
    """Small real inputs holding each mistake -> (app module, argv)."""
    import numpy as np
    import rasterio
    from PIL import Image
    from rasterio.transform import from_origin

    with rasterio.open(root / "scene.tif", "w", driver="GTiff", width=64, height=64, count=3, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10)) as dataset:
        dataset.write(np.random.default_rng(0).integers(1, 3000, (3, 64, 64), dtype=np.uint16))
        dataset.descriptions = ("B04", "B03", "B02")
    (root / "corrupt.tif").write_bytes(b"II*\x00" + b"garbage" * 20)
    (root / "notes.tif").write_text("not a raster")
    (root / "empty").mkdir()
    Image.new("RGB", (48, 64), (200, 10, 10)).save(root / "person.png")
    Image.new("L", (48, 64), 255).save(root / "mask.png")
    (root / "broken.jpg").write_text("not a picture")
    (root / "keypoints.json").write_text("{not json")
    out = str(root / "never-written")
    scene = str(root / "scene.tif")
    remote, brain = "clipsuite.remote_app.main", "clipsuite.brain_app.main"
    generative, medical = "clipsuite.generative_app.main", "clipsuite.medical_app.main"
    tryon = ["tryon", "--garment", str(root / "person.png"), "--mask", str(root / "mask.png"), "-o", f"{out}.png"]
    cases = {
        "remote index: band name the raster lacks": (remote, ["index", scene, "-o", out, "--bands", "B08"]),
        "remote index: band index past the count": (remote, ["index", scene, "-o", out, "--bands", "4,3,2"]),
        "remote index: corrupt TIFF": (remote, ["index", str(root / "corrupt.tif"), "-o", out]),
        "remote index: not a raster": (remote, ["index", str(root / "notes.tif"), "-o", out]),
        "remote index: empty folder": (remote, ["index", str(root / "empty"), "-o", out]),
        "remote index: --resolution -10": (remote, ["index", scene, "-o", out, "--resolution", "-10"]),
        "remote index: tile larger than the raster": (remote, ["index", scene, "-o", out, "--tile-size", "512"]),
        "remote index: uncached rs-m-clip offline": (remote, ["index", scene, "-o", out, "--tile-size", "64",
                                                              "--model", "rs-m-clip"]),
        "medical classify: uncached pubmedclip offline": (medical, ["classify", str(root / "person.png"),
                                                                    "--classes", "a,b", "--model", "pubmedclip"]),
        "generative tryon: unreadable person picture": (generative, [*tryon, "--person", str(root / "broken.jpg")]),
        "generative tryon: malformed keypoint JSON": (generative, [*tryon, "--person", str(root / "person.png"),
                                                                   "--keypoints", str(root / "keypoints.json")]),
    }
    if importlib.util.find_spec("clipsuite.brain") is not None:
        import nibabel as nib

        from clipsuite.brain import synthetic

        config = Path(synthetic.make_subject(root / "subject", n_train=20, n_test=6, n_sessions=2))
        data = json.loads(config.read_text())
        affine = nib.load(str(config.parent / data["mask"])).affine  # type: ignore[attr-defined]  # a Nifti1Image
        nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), affine), str(config.parent / "small_mask.nii.gz"))
        (config.parent / "mismatch.json").write_text(json.dumps(dict(data, mask="small_mask.nii.gz")))
        cases["brain fit: mask/betas grid mismatch"] = (brain, ["fit", str(config.parent / "mismatch.json"), "-o",
                                                                out, "--model", "tiny"])
        cases["brain fit: uncached default model offline"] = (brain, ["fit", str(config), "-o", out])
    return cases


def _mistakes(result: BenchResult, root: Path, repeat: int) -> None:
    """Issue 17's mistakes, offline with an empty Hugging Face cache, against `import torch, open_clip`."""
    python = sys.executable
    result.timings_s["import_torch_open_clip"], _ = _time([python, "-c", "import torch, open_clip"], repeat)
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(root / "hf-home"), "COLUMNS": "200"}
    for name, (module, argv) in _mistake_inputs(root).items():
        if importlib.util.find_spec(module) is None:
            result.notes.append(f"{name}: not installed ({module})")
            continue
        result.timings_s[name], code = _time([python, "-m", module, *argv], repeat, env)
        ratio = result.ratio(f"{name} / import torch, open_clip", name, "import_torch_open_clip")
        result.checks[f"{name}: exits 2"] = code == 2
        result.checks[f"{name}: under {MISTAKE_TARGET}x import torch, open_clip"] = ratio < MISTAKE_TARGET
