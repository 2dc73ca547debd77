"""CLI start-up (``--help``) and time-to-error (a missing input file) for each installed app, as ratios
against ``python -c "import torch"`` measured in the same run.

Each figure is the median wall time of a fresh process (``python -m <app module> ...``), since start-up
is what a person waits for. A ratio below 1 means the command answers before torch could even be
imported; the issue's goal is a wrong flag or missing file answered in well under the time torch takes.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time

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


def _time(argv: list[str], repeat: int) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(repeat + 1):  # the first run warms the file cache, untimed
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
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
    return result
