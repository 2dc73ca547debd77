"""Memory of reading an NSD subject as downloaded (``clipsuite.brain.nsd``), against the number of sessions.

A mini NSD tree in the release's layout (``synthetic.make_nsd``; random features drive the voxels, no CLIP)
with one subject whose betas are ``.nii.gz`` and one whose betas are ``.hdf5``. For 1, 2, 4 ... sessions the
subject is read (design -> trials, ROI voxels only, every trial of those sessions) and two peaks are taken:

- traced: ``tracemalloc`` peak in this process (numpy buffers, gzip streams) minus the result's bytes;
- process: peak RSS of a fresh process that only reads the subject, minus the result's bytes (HDF5's own
  C buffers and imports included; imports are the same for every session count).

What is left after subtracting the result is the reader's working memory; the figure of merit is its ratio to
the one-session run (flat = ~1). Baseline in the same run: the eager route, each session read whole with
``get_fdata`` and masked (what reading without chunks costs), traced the same way.

    uv run python shared/bench/run.py brain_nsd                                   # 40x48x36 grid, 150 trials
    uv run python shared/bench/run.py brain_nsd -- --grid 81,104,83 --per-session 750 --sessions 1,2   # NSD size
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from harness import BenchResult

T = TypeVar("T")
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork + exec, so a child of this (large)
# process reported this process's peak
PEAK = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024"
CHILD = f"""
import json, sys
from clipsuite.brain.config import load_config
from clipsuite.brain.nsd import load_nsd
data, _ = load_nsd(load_config(sys.argv[1]))
print(json.dumps({{"maxrss_mb": {PEAK}, "result_mb": data.responses.nbytes / 2**20}}))
"""
BASE = f"""
import json, sys
from clipsuite.brain.config import load_config
import clipsuite.brain.nsd
load_config(sys.argv[1])  # the same imports and header reads, no betas
print(json.dumps({{"maxrss_mb": {PEAK}}}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid", default="40,48,36", help="X,Y,Z of the functional grid (NSD 1.8 mm: 81,104,83)")
    parser.add_argument("--per-session", type=int, default=150, help="trials per session (NSD: 750)")
    parser.add_argument("--sessions", default="1,2,4,8", help="session counts to read")
    parser.add_argument("--root", type=Path, default=None, help="keep the tree here (default: a temporary folder)")


def _traced(fn: Callable[[Path], T], config: Path) -> tuple[float, T]:
    """Peak traced memory (MB) while ``fn(config)`` runs, and its value."""
    tracemalloc.start()
    value = fn(config)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, value


def _eager(config: Path) -> np.ndarray:
    """Every session read whole (float64 get_fdata), then masked: the route without chunked reads."""
    import nibabel as nib

    from clipsuite.brain.config import load_config
    from clipsuite.brain.data import load_mask

    source = load_config(config).nsd
    assert source is not None
    mask, _ = load_mask(source.roi_path)
    blocks = []
    for path in source.betas:
        img: Any = nib.load(path)  # a NIfTI image (typed as the base class)
        blocks.append((img.get_fdata(caching="unchanged")[mask].T / 300).astype(np.float32))
    return np.concatenate(blocks)


def run(args: argparse.Namespace) -> BenchResult:
    from clipsuite.brain import synthetic
    from clipsuite.brain.config import load_config
    from clipsuite.brain.nsd import load_nsd

    grid = tuple(int(v) for v in args.grid.split(","))
    counts = sorted(int(v) for v in args.sessions.split(","))
    result = BenchResult("brain_nsd", params={"grid": list(grid), "per_session": args.per_session,
                                              "sessions": counts})
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp) / "nsd"
        n_shared = max(1, counts[-1] * args.per_session // 12)
        rng = np.random.default_rng(0)
        synthetic.make_nsd(root, subjects={1: counts[-1], 2: counts[-1]}, per_session=args.per_session,
                           n_shared=n_shared, image_size=16, grid=(grid[0], grid[1], grid[2]), hdf5_subjects=(2,),
                           embed=lambda pictures: rng.normal(size=(len(pictures), 32)))
        for subject, kind in ((1, "nii.gz"), (2, "hdf5")):
            working, rss = {}, {}
            for n in counts:
                config = root / f"s{subject}_{n}.json"
                config.write_text(json.dumps({"format": "nsd", "root": ".", "subject": subject, "sessions": f"1-{n}"}))
                load_nsd(load_config(config))  # warm: first imports are not the reader's
                peak, (data, _) = _traced(lambda c: load_nsd(load_config(c)), config)
                kept = data.responses.nbytes / 2**20
                working[n] = peak - kept
                result.memory_mb[f"{kind}_traced_working_{n}_sessions"] = working[n]
                result.memory_mb[f"{kind}_result_{n}_sessions"] = kept
                child = json.loads(subprocess.run([sys.executable, "-c", CHILD, str(config)], capture_output=True,
                                                  text=True, check=True).stdout.strip().splitlines()[-1])
                rss[n] = child["maxrss_mb"] - child["result_mb"]
                result.memory_mb[f"{kind}_process_peak_rss_{n}_sessions"] = child["maxrss_mb"]
                if kind == "nii.gz":
                    eager, _ = _traced(_eager, config)
                    result.memory_mb[f"eager_traced_working_{n}_sessions"] = eager - kept
            base = json.loads(subprocess.run([sys.executable, "-c", BASE, str(root / f"s{subject}_1.json")],
                                             capture_output=True, text=True, check=True).stdout.strip())
            result.memory_mb[f"{kind}_process_imports_only"] = base["maxrss_mb"]
            for n in counts:
                rss[n] -= base["maxrss_mb"]  # the reader's own: above the imports, beyond the result
                result.memory_mb[f"{kind}_process_working_{n}_sessions"] = rss[n]
            for n in counts[1:]:
                result.ratios[f"{kind}_traced_working_{n}_vs_1_session"] = working[n] / working[counts[0]]
                if rss[counts[0]] > 1.0:  # below 1 MB the RSS is the allocator's noise, not a ratio to read
                    result.ratios[f"{kind}_process_working_{n}_vs_1_session"] = rss[n] / rss[counts[0]]
            result.checks[f"{kind}_working_memory_flat"] = max(working.values()) <= 1.25 * min(working.values())
        voxels = int(result.memory_mb[f"nii.gz_result_{counts[0]}_sessions"] * 2**20 / 4 / args.per_session)
        result.metrics["roi_voxels"] = voxels
        result.metrics["session_bytes_int16_mb"] = float(np.prod(grid)) * args.per_session * 2 / 2**20
    result.notes.append("working = peak minus the responses kept (n_trials x ROI voxels float32); process figures "
                        "subtract the RSS of a process that imports the same modules and reads the headers only")
    return result
