"""Multi-alpha, per-target ridge: clipsuite.brain.ridge vs scikit-learn RidgeCV and himalaya RidgeCV.

Like with like, in one run on the same data: leave-one-out (ours vs scikit-learn
``RidgeCV(alpha_per_target=True)``) and 5-fold (ours with the same folds vs himalaya's ``RidgeCV``,
torch backend). Each solver runs in its own forked process so its peak working memory (peak RSS minus
RSS at its start) is its own. Checks: same chosen alphas, predictions within 1e-4 (relative to the
targets' scale), and the issue's targets (>= 5x scikit-learn, faster than himalaya).

    uv run python shared/bench/run.py ridge                                # 8000 x 512 -> 15000, 10 alphas
    uv run python shared/bench/run.py ridge -- --n 2000 --p 256 --t 3000  # smaller first
    uv run python shared/bench/run.py ridge -- --pairs loo                 # only ours vs scikit-learn
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from typing import Any

import numpy as np
from harness import BenchResult, current_rss_mb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=8000, help="samples")
    parser.add_argument("--p", type=int, default=512, help="features")
    parser.add_argument("--t", type=int, default=15000, help="targets (voxels)")
    parser.add_argument("--alphas", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="ours and himalaya")
    parser.add_argument("--budget-mb", type=int, default=512, help="our working-memory budget per target chunk")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--pairs", default="loo,kfold", help="loo (ours vs scikit-learn), kfold (ours vs "
                        "himalaya), or both")


def _data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.n, args.p)).astype(np.float32)
    w = (rng.normal(size=(args.p, args.t)) * rng.uniform(0, 0.1, size=args.t)).astype(np.float32)
    y = x @ w + rng.normal(size=(args.n, args.t)).astype(np.float32)
    return x, y, np.logspace(-1, 5, args.alphas)


def _solve(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    x, y, alphas = _data(args)
    dtype = torch.float32 if args.dtype == "float32" else torch.float64
    folds = [(np.concatenate([np.arange(a), np.arange(b, args.n)]), np.arange(a, b))
             for a, b in zip(*(lambda e: (e[:-1], e[1:]))(np.linspace(0, args.n, args.folds + 1).astype(int)))]
    start_rss = current_rss_mb()
    start = time.perf_counter()
    if name == "ours_loo" or name == "ours_kfold":
        from clipsuite.brain.ridge import fit_ridge_cv

        model = fit_ridge_cv(x, y, alphas, cv="loo" if name == "ours_loo" else folds, dtype=dtype,
                             budget=args.budget_mb * 2**20)
        chosen, pred = model.alphas.double().numpy(), model.predict(x[:200]).double().numpy()
    elif name == "sklearn_loo":
        from sklearn.linear_model import RidgeCV

        ref = RidgeCV(alphas=alphas, alpha_per_target=True).fit(x.astype(np.float64), y.astype(np.float64))
        chosen, pred = np.asarray(ref.alpha_), ref.predict(x[:200].astype(np.float64))
    else:
        from himalaya.backend import set_backend
        from himalaya.ridge import RidgeCV as HRidgeCV
        from sklearn.model_selection import KFold

        set_backend("torch")
        ref = HRidgeCV(alphas=alphas.astype(x.dtype if dtype == torch.float32 else np.float64),
                       cv=KFold(args.folds), fit_intercept=True)
        xt = torch.as_tensor(x, dtype=dtype)
        ref.fit(xt, torch.as_tensor(y, dtype=dtype))
        chosen = ref.best_alphas_.double().numpy()
        pred = (xt[:200] @ ref.coef_ + ref.intercept_).double().numpy()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    index = np.abs(np.log(chosen)[:, None] - np.log(alphas)[None, :]).argmin(1)
    return {"seconds": seconds, "peak_mb": peak - start_rss, "index": index, "pred": pred}


def _child(name: str, args: argparse.Namespace, queue: Any) -> None:
    queue.put(_solve(name, args))


def _measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    # said at once, so a long run stopped from outside still leaves its finished solvers' figures
    print(f"  {name}: {out['seconds']:.1f} s, peak working memory {out['peak_mb']:.0f} MB", flush=True)
    return out


def run(args: argparse.Namespace) -> BenchResult:
    result = BenchResult("ridge", params=vars(args).copy())
    pairs = [(o, r) for key, o, r in (("loo", "ours_loo", "sklearn_loo"), ("kfold", "ours_kfold", "himalaya_kfold"))
             if key in args.pairs.split(",")]
    runs = {name: _measure(name, args) for pair in pairs for name in pair}
    _, y, _ = _data(args)
    scale = float(np.abs(y).max())
    for name, values in runs.items():
        result.timings_s[name] = values["seconds"]
        result.memory_mb[f"{name}_peak_working"] = values["peak_mb"]
    for ours, ref in pairs:
        same = float(np.mean(runs[ours]["index"] == runs[ref]["index"]))
        diff = float(np.abs(runs[ours]["pred"] - runs[ref]["pred"]).max()) / scale
        result.metrics[f"{ours}_vs_{ref}_same_alpha_fraction"] = same
        result.metrics[f"{ours}_vs_{ref}_max_pred_diff_rel"] = diff
        result.checks[f"{ours} = {ref} (alphas, predictions 1e-4)"] = same == 1.0 and diff < 1e-4
    if "sklearn_loo" in runs:
        speed_sk = 1 / result.ratio("ours_loo_time_over_sklearn", "ours_loo", "sklearn_loo")
        result.metrics["speedup_vs_sklearn"] = speed_sk
        result.checks[">= 5x faster than scikit-learn RidgeCV (LOO)"] = speed_sk >= 5
    if "himalaya_kfold" in runs:
        speed_hi = 1 / result.ratio("ours_kfold_time_over_himalaya", "ours_kfold", "himalaya_kfold")
        result.metrics["speedup_vs_himalaya"] = speed_hi
        result.checks["faster than himalaya RidgeCV (5-fold)"] = speed_hi > 1
    if args.dtype == "float32":
        result.notes.append("ours and himalaya in float32, scikit-learn in float64 (its own choice): a target "
                            "whose alpha scores tie to ~1e-7 may pick the neighbouring alpha")
    return result
