"""BiomedCoOp training and the paper-style comparison against zero-shot, CoOp, CoCoOp and KgCoOp.

Every method is fitted on the same K-shot draw per seed (the core's ``AdaptData``: frozen features
encoded once). Protocols: ``few-shot`` (all classes; test accuracy) and ``base-to-novel`` (train on
the first half of the sorted classes, test on base and, with the same learned context, on the novel
half; the harmonic mean summarises both).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from clipsuite.core.adapt.coop import CoOpClassifier
from clipsuite.core.adapt.data import AdaptData
from clipsuite.core.adapt.feature_cache import FeatureDataset
from clipsuite.core.adapt.fewshot_data import Split, base_novel
from clipsuite.core.adapt.io import load_classifier, save_adapter
from clipsuite.core.adapt.registry import METHODS, MethodOptions
from clipsuite.core.adapt.runner import accuracy, bind, prepare
from clipsuite.core.adapt.training import FitSettings, fit, freeze
from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel
from clipsuite.medical.evaluate import harmonic_mean
from clipsuite.medical.methods.biomedcoop import (
    BiomedCoOpConfig,
    BiomedCoOpTask,
    llm_embeddings,
    prompt_config,
)

COMPARE_METHODS = ("zeroshot", "coop", "cocoop", "kgcoop", "biomedcoop")
PAPER_LR, PAPER_BATCH = 0.0025, 4


def fit_biomedcoop(data: AdaptData, descriptions: Mapping[str, Sequence[str]], options: MethodOptions | None = None,
                   cfg: BiomedCoOpConfig | None = None) -> CoOpClassifier:
    """Train BiomedCoOp's context on a K-shot draw; returns a CoOp classifier (saveable by the core)."""
    options = options or MethodOptions()
    cfg = cfg or BiomedCoOpConfig()
    freeze(data.clip)
    torch.manual_seed(data.seed)
    classifier = CoOpClassifier(data.clip, data.class_names, prompt_config(cfg))
    llm = llm_embeddings(data.clip, data.class_names, descriptions, cfg.n_prompts)
    task = BiomedCoOpTask(data.clip, classifier, llm, cfg)
    epochs = options.epochs if options.epochs is not None else 100  # the paper's few-shot schedule
    settings = FitSettings(epochs=epochs, lr=options.lr or PAPER_LR, batch_size=options.batch_size or PAPER_BATCH,
                           max_steps=options.max_steps, optimizer=options.optimizer or "sgd", weight_decay=5e-4,
                           seed=data.seed, progress=options.progress, precision="fp32")
    fit(task, FeatureDataset(data.features("train")), settings)  # type: ignore[arg-type]
    return classifier


@dataclass
class CompareRow:
    method: str
    shots: int
    seed: int
    accuracy: float                  # few-shot: test accuracy; base-to-novel: base accuracy
    novel: float | None = None       # base-to-novel only
    hm: float | None = None


def _fit(method: str, data: AdaptData, options: MethodOptions,
         descriptions: Mapping[str, Sequence[str]] | None) -> torch.nn.Module:
    if method == "biomedcoop":
        if descriptions is None:
            raise InputError("biomedcoop needs LLM sentences per class: pass a descriptions JSON")
        return fit_biomedcoop(data, descriptions, options)
    if method not in METHODS:
        raise InputError(f"unknown method '{method}' (choose from {', '.join(COMPARE_METHODS)})")
    torch.manual_seed(data.seed)
    return METHODS[method].fit(data, options)


def _novel_accuracy(method: str, module: torch.nn.Module, base: AdaptData, novel: AdaptData,
                    options: MethodOptions) -> float:
    """Learned prompts re-targeted to the novel class names; zero-shot simply uses the novel names."""
    if method == "zeroshot":
        return accuracy(bind(METHODS["zeroshot"].fit(novel, options), novel, method), novel)
    with tempfile.TemporaryDirectory(prefix="clipsuite-b2n-") as tmp:
        path = save_adapter(Path(tmp) / "adapter.safetensors", module, method, base.class_names, base.clip)
        classifier = load_classifier(path, base.clip, novel.class_names)
        return accuracy(classifier, novel)


def compare(clip: ClipModel, split: Split, methods: Sequence[str] = COMPARE_METHODS, shots: int = 16,
            seeds: Sequence[int] = (1, 2, 3), protocol: str = "few-shot", options: MethodOptions | None = None,
            descriptions: Mapping[str, Sequence[str]] | None = None, views: int = 0,
            cache_dir: str | os.PathLike[str] | None = None,
            on_row: Callable[[CompareRow], None] | None = None) -> list[CompareRow]:
    options = options or MethodOptions()
    if protocol not in ("few-shot", "base-to-novel"):
        raise InputError(f"protocol '{protocol}': use few-shot or base-to-novel")
    rows = []
    for seed in seeds:
        if protocol == "few-shot":
            data = prepare(clip, split, shots, seed, views, cache_dir)
            novel = None
        else:
            data = prepare(clip, base_novel(split, "base"), shots, seed, views, cache_dir)
            novel = AdaptData(clip, base_novel(split, "novel"), shots, seed, views=0, cache_dir=cache_dir)
        for method in methods:
            module = _fit(method, data, options, descriptions)
            acc = accuracy(bind(module, data, method), data)
            row = CompareRow(method, shots, seed, acc)
            if novel is not None:
                row.novel = _novel_accuracy(method, module, data, novel, options)
                row.hm = harmonic_mean(acc, row.novel)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def summarize(rows: Sequence[CompareRow]) -> list[dict[str, float | str]]:
    """Mean over seeds per method, in the order methods first appear (the paper's table rows)."""
    table: list[dict[str, float | str]] = []
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        entry: dict[str, float | str] = {"method": method, "accuracy": sum(r.accuracy for r in mine) / len(mine)}
        if mine[0].novel is not None:
            entry["novel"] = sum(r.novel or 0.0 for r in mine) / len(mine)
            entry["hm"] = harmonic_mean(float(entry["accuracy"]), float(entry["novel"]))
        table.append(entry)
    return table


def format_table(rows: Sequence[CompareRow]) -> str:
    """A plain-text table: method | accuracy (or base | novel | HM), means over seeds."""
    table = summarize(rows)
    b2n = bool(table) and "novel" in table[0]
    header = ["method", "base", "novel", "HM"] if b2n else ["method", f"{rows[0].shots}-shot acc" if rows else "acc"]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for entry in table:
        values = [entry["accuracy"], entry["novel"], entry["hm"]] if b2n else [entry["accuracy"]]
        lines.append(" | ".join([str(entry["method"]), *(f"{float(v):.2f}" for v in values)]))
    return "\n".join(lines)
