"""BiomedCoOp training and the paper-style comparison against zero-shot, CoOp, CoCoOp and KgCoOp.

Every method is fitted on the same K-shot draw per seed (the core's ``AdaptData``: frozen features
encoded once). Methods come from the core's adaptation-method registry; BiomedCoOp joins it through
this package's ``clipsuite.adapt_methods`` entry point, so ``clipsuite adapt train --method biomedcoop``
works too. Protocols: ``few-shot`` (all classes; test accuracy) and ``base-to-novel`` (train on
the first half of the sorted classes, test on base and, with the same learned context, on the novel
half; the harmonic mean summarises both).
"""

from __future__ import annotations

import dataclasses
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
from clipsuite.core.adapt.registry import Method, MethodOptions, find_method
from clipsuite.core.adapt.runner import accuracy, bind, prepare
from clipsuite.core.adapt.training import FitSettings, fit, freeze
from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel
from clipsuite.core.seeds import group_over_seeds, mean_sd
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
    fit(task, FeatureDataset(data.features("train")), settings)
    return classifier


def _fit_registered(data: AdaptData, options: MethodOptions) -> CoOpClassifier:
    return fit_biomedcoop(data, options.sentences("biomedcoop", data.class_names), options)


BIOMEDCOOP = Method("biomedcoop", "prompt", _fit_registered, needs_descriptions=True)


@dataclass
class CompareRow:
    method: str
    shots: int
    seed: int
    accuracy: float                  # few-shot: test accuracy; base-to-novel: base accuracy
    novel: float | None = None       # base-to-novel only
    hm: float | None = None


def _fit(method: Method, data: AdaptData, options: MethodOptions) -> torch.nn.Module:
    torch.manual_seed(data.seed)  # random context init is part of the seed
    return method.fit(data, options)


def _novel_accuracy(method: Method, module: torch.nn.Module, base: AdaptData, novel: AdaptData,
                    options: MethodOptions) -> float:
    """Learned prompts re-targeted to the novel class names; a method that learns nothing from the shots
    (zero-shot) is simply fitted on the novel names."""
    if not method.uses_shots:
        return accuracy(bind(method.fit(novel, options), novel, method.name), novel)
    with tempfile.TemporaryDirectory(prefix="clipsuite-b2n-") as tmp:
        path = save_adapter(Path(tmp) / "adapter.safetensors", module, method.name, base.class_names, base.clip)
        classifier = load_classifier(path, base.clip, novel.class_names)
        return accuracy(classifier, novel)


def compare(clip: ClipModel, split: Split, methods: Sequence[str] = COMPARE_METHODS, shots: int = 16,
            seeds: Sequence[int] = (1, 2, 3), protocol: str = "few-shot", options: MethodOptions | None = None,
            descriptions: Mapping[str, Sequence[str]] | None = None, views: int = 0,
            cache_dir: str | os.PathLike[str] | None = None,
            on_row: Callable[[CompareRow], None] | None = None) -> list[CompareRow]:
    options = options or MethodOptions()
    if descriptions is not None:
        options = dataclasses.replace(options, descriptions=descriptions)
    if protocol not in ("few-shot", "base-to-novel"):
        raise InputError(f"protocol '{protocol}': use few-shot or base-to-novel")
    chosen = [find_method(name) for name in methods]  # an unknown name fails before any encoding
    rows = []
    for seed in seeds:
        if protocol == "few-shot":
            data = prepare(clip, split, shots, seed, views, cache_dir)
            novel = None
        else:
            data = prepare(clip, base_novel(split, "base"), shots, seed, views, cache_dir)
            novel = AdaptData(clip, base_novel(split, "novel"), shots, seed, views=0, cache_dir=cache_dir)
        for method in chosen:
            module = _fit(method, data, options)
            acc = accuracy(bind(module, data, method.name), data)
            row = CompareRow(method.name, shots, seed, acc)
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
    for method, mine in group_over_seeds(rows, lambda r: r.method).items():
        entry: dict[str, float | str] = {"method": method, "accuracy": mean_sd([r.accuracy for r in mine])[0]}
        if mine[0].novel is not None:
            entry["novel"] = mean_sd([r.novel or 0.0 for r in mine])[0]
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
