"""Index at scale from shards on disk, in bounded memory (issue 21).

The bench writes ``--n`` x ``--dim`` float16 embedding shards (the CLIP-like cones of
``bench_index_ood``, ``--shard-rows`` per shard, metadata with a ``u`` column = row % 100 for filters),
then, each in its own process so peak RSS is that step's alone:

- ``store``: ``clipsuite index build emb/ --max-memory M --tune-queries tune.npy``'s library path
  (plan from the budget, train on a sample, add block by block, merge lists on disk, tune nprobe for
  recall@10 0.95 on separate text queries); build time and peak RSS;
- serving: open the folder (lists and vectors memory-mapped), single-thread latency and recall@10 of
  held-out text queries across nprobe, at the tuned setting, held-out image queries at the tuned image
  setting, and filtered (``u < 1``, ``u < 10``, ``u < 50``: 1%, 10%, 50% of rows) against exact filtered
  search; peak RSS while serving (VmHWM) and RSS after (anonymous and file-backed pages apart);
- ``old``: the project's previous path, ``EmbeddingIndex.from_shards(kind="ivf")`` (IVF ~4 sqrt(n) cells,
  nprobe 32, everything in RAM, metadata as Python dicts) on the first ``--baseline-rows`` rows (whole
  shards; the issue: "against exact search on a 1M subset"), with that subset's own ground truth and
  exact latency; build time, peak RSS, recall, latency;
- ``hnsw``: faiss HNSW32 through ``EmbeddingIndex`` on the same subset when it is <= ``--hnsw-max`` rows
  (its one-thread build is slow).

Exact search (faiss brute force over float32 in RAM, one thread) is the latency baseline and the ground
truth; QPS at recall 0.9 / 0.95 is read off the nprobe sweep (the smallest nprobe that reaches it).
Targets from the issue: peak RSS building < 8 GB, serving < 4 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from harness import BenchResult

SELECTIVITIES = {"1%": "u < 1", "10%": "u < 10", "50%": "u < 50"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors (the issue asks for 10M)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--centres", type=int, default=4096)
    parser.add_argument("--shard-rows", type=int, default=250_000)
    parser.add_argument("--max-memory", default="8G")
    parser.add_argument("--queries", type=int, default=300, help="held-out text queries")
    parser.add_argument("--tune", type=int, default=300, help="text queries to tune on")
    parser.add_argument("--single", type=int, default=100, help="queries timed one at a time")
    parser.add_argument("--nprobes", default="1,2,4,8,16,32,64,128")
    parser.add_argument("--hnsw-max", type=int, default=300_000, help="build the HNSW32 baseline up to this n")
    parser.add_argument("--baseline-rows", type=int, default=1_000_000,
                        help="the old path and HNSW run on this many first rows (rounded down to whole shards)")
    parser.add_argument("--image-queries", type=int, default=300, help="held-out image (in-distribution) queries")
    parser.add_argument("--exact-max", type=int, default=2_000_000,
                        help="rows held in RAM to time exact search (scaled to n beyond them)")
    parser.add_argument("--skip-old", action="store_true", help="leave out the old in-RAM IVF path")
    parser.add_argument("--folder", type=Path, default=None, help="work folder (default: a temp dir, removed)")
    parser.add_argument("--quick", action="store_true", help="n=30000, dim 64: a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    # the generator's options, as bench_index_ood
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--image-cone", type=float, default=1.5)
    parser.add_argument("--text-cone", type=float, default=2.0)
    parser.add_argument("--cluster-gap", type=float, default=0.6)
    parser.add_argument("--twist", type=float, default=0.5)
    parser.add_argument("--text-noise", type=float, default=0.5)


def _log(message: str) -> None:
    print(f"[index_scale {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _rss() -> dict[str, float]:
    """Resident memory of this process in MB: all, anonymous, file-backed (mapped files), and the peak
    (VmHWM: reset by exec, unlike ru_maxrss, which a child started by fork + exec inherits from the
    parent's size at the fork)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


class _PeakAnon:
    """The peak of this process's own (anonymous) memory, sampled every 0.2 s on a thread: VmHWM also counts
    the pages of memory-mapped files the step read, which the kernel drops as it needs."""

    def __init__(self) -> None:
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, _rss()["RssAnon"])

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _rss()["RssAnon"])


def _write_shards(args: argparse.Namespace, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float16 shards + JSONL written chunk by chunk; returns held-out text queries, tuning text queries and
    held-out image queries (new draws of the indexed distribution)."""
    from bench_index_ood import Generator

    from clipsuite.core.embed import ShardWriter, shard_name

    gen = Generator(args)
    rng = np.random.default_rng(args.seed + 1)
    count = (args.n + args.shard_rows - 1) // args.shard_rows
    row = 0
    for number in range(count):
        rows = min(args.shard_rows, args.n - row)
        name = shard_name(number, count)
        writer = ShardWriter(folder / f"{name}.safetensors", args.dim, "float16")
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as meta:
            for start in range(0, rows, 50_000):
                size = min(50_000, rows - start)
                writer.write(gen.images(size, rng)[0])
                meta.writelines(json.dumps({"id": row + i, "path": f"img/{row + i}.jpg", "u": (row + i) % 100}) + "\n"
                                for i in range(start, start + size))
        writer.close({"model": "synthetic", "dim": args.dim, "shard": number, "num_shards": count,
                      "count": rows, "dtype": "float16"})
        row += rows
    return gen.texts(args.queries, rng), gen.texts(args.tune, rng), gen.images(args.image_queries, rng)[0]


# ---- child processes: each step's peak RSS is its own ------------------------------------------------
def _run_child(step: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run ``_step_<step>`` in a fresh interpreter (this file with --child), read its JSON answer."""
    (work / "args.json").write_text(json.dumps(vars(args), default=str))
    answer = work / f"{step}.json"
    answer.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", step, str(work)], env=env, cwd=Path(__file__).parent)
    if done.returncode != 0 or not answer.is_file():
        raise RuntimeError(f"step {step} failed (exit {done.returncode})")
    out: dict[str, Any] = json.loads(answer.read_text())
    out["wall_s"] = time.perf_counter() - start
    return out


def _child_main(step: str, work: Path) -> None:
    import faiss

    faiss.omp_set_num_threads(1)
    args = json.loads((work / "args.json").read_text())
    out = globals()[f"_step_{step}"](args, work)
    (work / f"{step}.json").write_text(json.dumps(out, default=float))


def _step_store(args: dict[str, Any], work: Path) -> dict[str, Any]:
    from clipsuite.core.embed import read_shards
    from clipsuite.core.index_build import build_store, plan_config
    from clipsuite.core.index_plan import parse_memory
    from clipsuite.core.index_store import ShardSource, StoreConfig
    from clipsuite.core.index_tuning import tune

    source = ShardSource(read_shards(work / "emb"))
    config = plan_config(StoreConfig(max_memory=parse_memory(args["max_memory"])), source.total, source.dim)
    tune_queries = np.load(work / "tune.npy")
    start = time.perf_counter()
    anon = _PeakAnon()
    store = build_store(source, work / "ix", config, tune=lambda s: tune(s, tune_queries, 0.95))
    return {"build_s": time.perf_counter() - start, "rss": _rss(), "config": {
        k: v for k, v in vars(store.config).items() if k != "tuning"}, "tuning": store.config.tuning,
        "peak_rss_mb": _rss()["VmHWM"], "peak_anon_mb": anon.stop()}


def _timed(fn: Any, queries: np.ndarray) -> float:
    fn(queries[:1])
    times = []
    for query in queries:
        start = time.perf_counter()
        fn(query[None, :])
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _step_serve(args: dict[str, Any], work: Path) -> dict[str, Any]:
    from clipsuite.core.index_store import IndexStore
    from clipsuite.core.index_tuning import recall_at_k

    start = time.perf_counter()
    store = IndexStore.open(work / "ix")
    out: dict[str, Any] = {"open_s": time.perf_counter() - start, "rss_after_open": _rss()}
    texts, truth = np.load(work / "texts.npy"), np.load(work / "truth.npy")
    single = texts[:args["single"]]
    sweep = {}
    for nprobe in [int(v) for v in args["nprobes"].split(",")]:
        recall = recall_at_k(store.search(texts, 10, nprobe=nprobe)[1], truth)
        sweep[nprobe] = {"recall": recall, "latency_s": _timed(lambda q, p=nprobe: store.search(q, 10, nprobe=p),
                                                                         single)}
    out["sweep"] = sweep
    out["tuned"] = {"recall": recall_at_k(store.search(texts, 10)[1], truth),
                    "latency_s": _timed(lambda q: store.search(q, 10), single)}
    images, image_truth = np.load(work / "images.npy"), np.load(work / "image_truth.npy")
    out["images"] = {"recall": recall_at_k(store.search(images, 10, shift=False)[1], image_truth),
                     "nprobe": store.config.image_nprobe or store.config.nprobe,
                     "latency_s": _timed(lambda q: store.search(q, 10, shift=False), images[:args["single"]])}
    filtered = {}
    for label, where in SELECTIVITIES.items():
        start = time.perf_counter()
        allowed = store.matching_rows(where)  # the predicate's one DuckDB scan; searches reuse its answer
        predicate_s = time.perf_counter() - start
        exact = store.exact_search(store_queries := texts.astype(np.float32), 10, allowed)[1]
        found = store.search(store_queries, 10, where=where)[1]
        filtered[label] = {"recall": recall_at_k(found, exact), "rows": int(allowed.size), "predicate_s": predicate_s,
                           "all_match": bool(np.isin(found[found >= 0], allowed).all()),
                           "latency_s": _timed(lambda q, w=where: store.search(q, 10, where=w), single)}
    out["filtered"] = filtered
    out["rss_after_serving"] = _rss()
    out["peak_rss_mb"] = _rss()["VmHWM"]
    return out


def _step_old(args: dict[str, Any], work: Path, kind: str = "ivf") -> dict[str, Any]:
    from clipsuite.core.index import EmbeddingIndex, IndexConfig
    from clipsuite.core.index_tuning import recall_at_k

    start = time.perf_counter()
    index = EmbeddingIndex.from_shards(work / "emb_subset", IndexConfig(kind=kind))
    build = time.perf_counter() - start
    texts, truth = np.load(work / "texts.npy"), np.load(work / "subset_truth.npy")
    out: dict[str, Any] = {"build_s": build, "rss": _rss(), "nlist": index.config.nlist}
    settings = [32, 64, 128] if kind == "ivf" else [64, 128, 256, 512]
    for value in settings:
        if kind == "ivf":
            index.set_search_params(nprobe=value)
        else:
            index.set_search_params(ef_search=value)
        out[str(value)] = {"recall": recall_at_k(index.search(texts, 10).rows, truth),
                           "latency_s": _timed(lambda q: index.search(q, 10), texts[:args["single"]])}
    out["peak_rss_mb"] = _rss()["VmHWM"]
    return out


def _step_hnsw(args: dict[str, Any], work: Path) -> dict[str, Any]:
    return _step_old(args, work, kind="hnsw")


# ---- the run -------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> BenchResult:
    if args.quick:
        args.n, args.dim, args.centres, args.shard_rows, args.queries, args.tune, args.single = (
            30_000, 64, 300, 10_000, 200, 200, 30)
    import faiss

    faiss.omp_set_num_threads(1)
    result = BenchResult("index_scale", params=dict(vars(args), folder=str(args.folder)))
    work = args.folder or Path(tempfile.mkdtemp(prefix="clipsuite-scale-"))
    (work / "emb").mkdir(parents=True, exist_ok=True)
    try:
        _log(f"writing {args.n} x {args.dim} float16 shards")
        start = time.perf_counter()
        texts, tune_queries, images = _write_shards(args, work / "emb")
        result.timings_s["write_shards"] = time.perf_counter() - start
        np.save(work / "texts.npy", texts)
        np.save(work / "tune.npy", tune_queries)
        np.save(work / "images.npy", images)
        args.baseline_rows = _subset_folder(args, work)
        _baseline(result, args, work, texts)
        _log("building the store in a child process")
        built = _run_child("store", args, work)
        result.timings_s["store/build"] = built["build_s"]
        result.memory_mb["store/build_peak_rss"] = built["peak_rss_mb"]
        if "peak_anon_mb" in built:
            result.memory_mb["store/build_peak_anon"] = built["peak_anon_mb"]
        result.params["store_config"] = built["config"]
        result.params["store_tuning"] = built["tuning"]
        result.memory_mb["store/on_disk"] = sum(p.stat().st_size for p in (work / "ix").iterdir()) / 2**20
        _log("serving in a child process")
        served = _run_child("serve", args, work)
        _report_serving(result, served)
        if not args.skip_old:
            _log(f"old path: EmbeddingIndex ivf from the first {args.baseline_rows} rows' shards (all in RAM)")
            _report_other(result, "old_ivf_nprobe", _run_child("old", args, work))
        if args.baseline_rows <= args.hnsw_max:
            _log(f"HNSW32 baseline on the first {args.baseline_rows} rows")
            _report_other(result, "hnsw32_ef", _run_child("hnsw", args, work))
        else:
            result.notes.append(f"HNSW32 skipped: {args.baseline_rows} rows > --hnsw-max {args.hnsw_max} (one-thread "
                                "build too slow)")
    finally:
        if args.folder is None:
            shutil.rmtree(work, ignore_errors=True)
    build_peak = result.memory_mb["store/build_peak_rss"]
    result.checks["peak RSS while building < 8 GB"] = build_peak < 8 * 1024
    result.checks["peak RSS while serving < 4 GB"] = result.memory_mb["store/serve_peak_rss"] < 4 * 1024
    return result


def _subset_folder(args: argparse.Namespace, work: Path) -> int:
    """``emb_subset``: links to the first whole shards holding up to ``--baseline-rows`` rows (renamed as a
    complete set of their own); returns how many rows it holds."""
    shards = max(1, min(args.n, args.baseline_rows) // args.shard_rows)
    subset = work / "emb_subset"
    shutil.rmtree(subset, ignore_errors=True)
    subset.mkdir()
    from clipsuite.core.embed import shard_name

    total = (args.n + args.shard_rows - 1) // args.shard_rows
    for number in range(shards):
        for suffix in (".safetensors", ".jsonl"):
            (subset / f"{shard_name(number, shards)}{suffix}").symlink_to(
                work / "emb" / f"{shard_name(number, total)}{suffix}")
    return min(args.n, shards * args.shard_rows)


def _baseline(result: BenchResult, args: argparse.Namespace, work: Path, texts: np.ndarray) -> None:
    """Exact ground truth over every row for the text and the image queries, streamed shard by shard (faiss
    brute force, one thread, top 10 merged), and the text queries' truth over the first ``--baseline-rows``
    rows (the old path's subset). Single-query exact latency over the first ``--exact-max`` rows in RAM as
    float32: past that the vectors do not fit this machine, and brute force is linear in n, so it is scaled
    by n / rows (noted); the subset's own exact latency is measured on its rows."""
    import faiss

    from clipsuite.core.embed import read_shards

    images = np.load(work / "images.npy")
    queries = np.vstack([texts, images])
    best = np.full((len(queries), 10), -np.inf, np.float32)
    rows = np.full((len(queries), 10), -1, np.int64)
    timed: np.ndarray | None = None
    offset, spent = 0, 0.0
    for chunk in read_shards(work / "emb").chunks():  # one block of one shard at a time (block_rows rows)
        data = np.ascontiguousarray(chunk, dtype=np.float32)
        faiss.normalize_L2(data)
        start = time.perf_counter()
        scores, found = faiss.knn(queries, data, 10, metric=faiss.METRIC_INNER_PRODUCT)
        spent += time.perf_counter() - start
        both, ids = np.hstack([best, scores]), np.hstack([rows, found + offset])
        keep = np.argsort(-both, axis=1, kind="stable")[:, :10]
        best, rows = np.take_along_axis(both, keep, 1), np.take_along_axis(ids, keep, 1)
        if offset < args.exact_max:
            part = data[:args.exact_max - offset]
            timed = part.copy() if timed is None else np.vstack([timed, part])  # up to --exact-max rows
        offset += len(data)
        if offset == args.baseline_rows:  # whole shards: a chunk ends here
            np.save(work / "subset_truth.npy", rows[:len(texts)])
        del data
    result.timings_s["exact/ground_truth"] = spent
    np.save(work / "truth.npy", rows[:len(texts)])
    np.save(work / "image_truth.npy", rows[len(texts):])
    assert timed is not None
    latency = _timed(lambda q, x=timed: faiss.knn(q, x, 10, metric=faiss.METRIC_INNER_PRODUCT), texts[:args.single])
    scale = offset / len(timed)
    result.timings_s["exact/single_query"] = latency * scale
    if scale > 1:
        result.timings_s[f"exact/single_query_measured_on_{len(timed)}_rows"] = latency
        result.notes.append(f"exact single-query latency measured on the first {len(timed)} rows in RAM and scaled "
                            f"x{scale:g} to {offset} rows (brute force is linear in n; {offset} float32 rows do "
                            "not fit this machine's memory)")
    if args.baseline_rows < offset and not (args.skip_old and args.baseline_rows > args.hnsw_max):
        subset = timed[:args.baseline_rows]
        result.timings_s["exact/single_query_subset"] = _timed(
            lambda q, x=subset: faiss.knn(q, x, 10, metric=faiss.METRIC_INNER_PRODUCT), texts[:args.single])
        result.notes.append(f"old path and HNSW32 on the first {args.baseline_rows} rows, against exact search and "
                            "ground truth on those rows")


def _report_serving(result: BenchResult, served: dict[str, Any]) -> None:
    result.timings_s["store/open"] = served["open_s"]
    result.memory_mb["store/serve_rss"] = served["rss_after_serving"]["VmRSS"]
    result.memory_mb["store/serve_rss_anon"] = served["rss_after_serving"]["RssAnon"]
    result.memory_mb["store/serve_rss_file"] = served["rss_after_serving"]["RssFile"]
    result.memory_mb["store/serve_peak_rss"] = served["peak_rss_mb"]
    for nprobe, got in served["sweep"].items():
        tag = f"store/nprobe{nprobe}"
        result.metrics[f"{tag}_recall@10"] = got["recall"]
        result.timings_s[f"{tag}_single_query"] = got["latency_s"]
        result.ratio(f"{tag}_speedup", "exact/single_query", f"{tag}_single_query")
    for target in (0.9, 0.95):
        hit = next((n for n, got in served["sweep"].items() if got["recall"] >= target), None)
        if hit is not None:
            result.metrics[f"store/qps_at_recall_{target}"] = 1 / served["sweep"][hit]["latency_s"]
            result.notes.append(f"recall@10 {target}: first reached at nprobe {hit}")
    result.metrics["store/image_recall@10"] = served["images"]["recall"]
    result.params["image_nprobe"] = served["images"]["nprobe"]
    result.timings_s["store/image_single_query"] = served["images"]["latency_s"]
    result.ratio("store/image_speedup", "exact/single_query", "store/image_single_query")
    result.metrics["store/tuned_recall@10"] = served["tuned"]["recall"]
    result.timings_s["store/tuned_single_query"] = served["tuned"]["latency_s"]
    result.ratio("store/tuned_speedup", "exact/single_query", "store/tuned_single_query")
    for label, got in served["filtered"].items():
        tag = f"store/filtered_{label}"
        result.metrics[f"{tag}_recall@10"] = got["recall"]
        result.timings_s[f"{tag}_single_query"] = got["latency_s"]
        result.timings_s[f"{tag}_predicate_once"] = got["predicate_s"]
        result.ratio(f"{tag}_vs_unfiltered", f"{tag}_single_query", "store/tuned_single_query")
        result.checks[f"filtered {label}: every hit matches, recall@10 >= 0.95"] = got["all_match"] and got[
            "recall"] >= 0.95


def _report_other(result: BenchResult, name: str, got: dict[str, Any]) -> None:
    subset = "exact/single_query_subset"  # the baselines ran on the first --baseline-rows rows
    exact = subset if subset in result.timings_s else "exact/single_query"
    result.timings_s[f"{name}/build"] = got["build_s"]
    result.memory_mb[f"{name}/peak_rss"] = got["peak_rss_mb"]
    for key, value in got.items():
        if isinstance(value, dict) and "recall" in value:
            result.metrics[f"{name}{key}_recall@10"] = value["recall"]
            result.timings_s[f"{name}{key}_single_query"] = value["latency_s"]
            result.ratio(f"{name}{key}_speedup", exact, f"{name}{key}_single_query")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        _child_main(sys.argv[2], Path(sys.argv[3]))
    else:
        from harness import main

        main(["index_scale", "--", *sys.argv[1:]])
