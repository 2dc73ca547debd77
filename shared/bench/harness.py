"""The benchmark harness: run benchmark scripts, print their figures, write JSON.

A benchmark is a module ``shared/bench/bench_<name>.py`` with

    def add_arguments(parser: argparse.ArgumentParser) -> None   # its own options (sizes, --quick ...)
    def run(args: argparse.Namespace) -> BenchResult             # measures, returns named figures

Speed is always reported as a ratio against a baseline measured in the same run (same machine, same
load), never as a bare wall-clock claim. ``python shared/bench/run.py --help`` runs them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see run.py; only effective before torch/faiss load


@dataclass
class BenchResult:
    """Named figures of one benchmark run. Ratios are ``value / baseline`` of two timings."""

    benchmark: str
    params: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    memory_mb: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)  # targets from the issue: met or not
    notes: list[str] = field(default_factory=list)

    def ratio(self, name: str, numerator: str, baseline: str) -> float:
        """Record ``timings[numerator] / timings[baseline]`` under ``name``."""
        value = self.timings_s[numerator] / self.timings_s[baseline]
        self.ratios[name] = value
        return value


def median_time(fn: Callable[[], Any], repeat: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or the largest finished child) so far, in MB."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return usage.ru_maxrss / 1024  # Linux reports KiB


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = float("nan")
    info: dict[str, Any] = {"nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "cpu": cpu,
                            "memory_gb": round(mem_gb, 1), "python": platform.python_version(),
                            "load_avg_1m": os.getloadavg()[0],
                            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    from importlib.metadata import PackageNotFoundError, version

    for name, dist in (("torch", "torch"), ("faiss", "faiss-cpu"), ("open_clip", "open_clip_torch"),
                       ("numpy", "numpy")):
        # metadata only: importing open_clip costs seconds (a minute on a crowded machine)
        with contextlib.suppress(PackageNotFoundError):
            info[name] = version(dist)
    return info


def discover() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(BENCH_DIR.glob("bench_*.py"))}


def _load(path: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"clipsuite_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.path.insert(0, str(BENCH_DIR))  # benchmarks may import the harness by name
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def format_result(result: BenchResult) -> str:
    lines = [f"== {result.benchmark} ==", f"params: {json.dumps(result.params)}"]
    for title, values, unit in (("timings", result.timings_s, "s"), ("memory", result.memory_mb, "MB"),
                                ("metrics", result.metrics, ""), ("ratios", result.ratios, "x")):
        for key, value in values.items():
            lines.append(f"  {title:8s} {key:48s} {value:12.4f} {unit}")
    for key, ok in result.checks.items():
        lines.append(f"  check    {key:48s} {'PASS' if ok else 'FAIL'}")
    lines.extend(f"  note     {note}" for note in result.notes)
    return "\n".join(lines)


def run_benchmarks(names: list[str], forwarded: list[str], out_dir: Path | None) -> list[BenchResult]:
    available = discover()
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; available: {sorted(available)}")
    results = []
    for name in names or sorted(available):
        module = _load(available[name])
        if not (hasattr(module, "run") and hasattr(module, "add_arguments")):
            # a standalone script living in shared/bench: say so instead of failing the whole run
            print(f"== {name} == skipped: no add_arguments()/run(); run `python {available[name]}` directly",
                  flush=True)
            continue
        parser = argparse.ArgumentParser(prog=f"bench {name}")
        module.add_arguments(parser)
        args, _ = parser.parse_known_args(forwarded)  # options meant for another benchmark are ignored
        started = time.perf_counter()
        result: BenchResult = module.run(args)
        result.timings_s.setdefault("benchmark_total", time.perf_counter() - started)
        print(format_result(result), flush=True)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            payload = {"machine": machine_info(), "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
                       **asdict(result)}
            target = out_dir / f"{name}.json"
            tmp = target.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(payload, indent=2) + "\n")
            os.replace(tmp, target)
            print(f"wrote {target}", flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    forwarded = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description="Run clipsuite benchmarks. Options after -- go to each benchmark "
                                                 "(e.g. -- --quick, -- --n 100000).")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {', '.join(discover())})")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="folder for <name>.json")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(own)
    print(json.dumps(machine_info()), flush=True)
    run_benchmarks(args.names, forwarded, None if args.no_write else args.out)
