"""Train, evaluate and compare methods: one row (method, shots, seed, accuracy) per run.

``run`` is the one comparison of the suite (``clipsuite adapt train``, BiomedCoOp's paper table, the
medical evidence): per seed it draws the K-shot subset, encodes the images once per draw, fits every asked
method on that shared draw and scores it on the test part, the way the few-shot papers build their
tables. ``protocol="base-to-novel"`` trains on the base half of the classes and scores base and, with the
same learned prompts, the novel half (``results``: rows, mean +- sd over seeds, harmonic mean).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from clipsuite.core.adapt.data import AdaptData
from clipsuite.core.adapt.fewshot_data import Split, base_novel, few_shot
from clipsuite.core.adapt.io import LearnedClassifier, load_classifier, save_adapter
from clipsuite.core.adapt.registry import Method, MethodOptions, find_method
from clipsuite.core.adapt.results import (
    COLUMNS,
    PROTOCOLS,
    Row,
    Summary,
    harmonic_mean,
    summarize,
    summary_text,
    write_csv,
)
from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel

if TYPE_CHECKING:
    from clipsuite.core.adapt.adapt_run import AdaptRun

__all__ = ["COLUMNS", "Row", "Summary", "accuracy", "bind", "evaluate_file", "novel_accuracy", "prepare", "run",
           "summarize", "summary_text", "train_adapt_run", "train_one", "write_csv"]


def bind(module: nn.Module, data: AdaptData, method: str) -> LearnedClassifier:
    """A trained module as the same ``LearnedClassifier`` that loading a saved file gives."""
    return LearnedClassifier(module.to(data.clip.device), data.clip, {"method": method}, list(data.class_names))


@torch.no_grad()
def accuracy(classifier: LearnedClassifier, data: AdaptData, part: str = "test", batch_size: int = 256) -> float:
    """Top-1 accuracy (percent) on a part of the draw: cached features, or pixels for MaPLe."""
    if not data.split.part(part):
        raise InputError(f"{data.split.source}: the '{part}' part is empty, nothing to evaluate on")
    if classifier.needs_pixels:
        inputs, labels = data.pixels(part)
    else:
        cached = data.features(part)
        inputs, labels = cached.features[0], cached.labels
    predictions = torch.cat([classifier.logits(inputs[i:i + batch_size]).argmax(-1).cpu()
                             for i in range(0, len(inputs), batch_size)])
    return 100.0 * float((predictions == labels).float().mean())


def prepare(clip: ClipModel, split: Split, shots: int, seed: int, views: int = 10,
            cache_dir: str | os.PathLike[str] | None = None) -> AdaptData:
    return AdaptData(clip, few_shot(split, shots, seed), shots, seed, views=views, cache_dir=cache_dir)


def train_one(method: str, data: AdaptData, options: MethodOptions | None = None,
              output: str | os.PathLike[str] | None = None) -> tuple[LearnedClassifier, Row]:
    """Fit one method on a draw, score it on the test part, optionally save it to ``output``."""
    fit_method = find_method(method).fit
    torch.manual_seed(data.seed)  # random context / meta-net init is part of the seed
    module = fit_method(data, options or MethodOptions())
    classifier = bind(module, data, method)
    if output is not None:
        save_adapter(output, module, method, data.class_names, data.clip,
                     {"shots": data.shots, "seed": data.seed, "split": data.split.source})
    return classifier, Row(method, data.shots, data.seed, accuracy(classifier, data))


def novel_accuracy(method: Method, module: nn.Module, base: AdaptData, novel: AdaptData,
                   options: MethodOptions) -> float:
    """Accuracy on the novel classes: the prompts learned on the base classes re-targeted to the novel
    names (saved and loaded, as a user would); a method that learns nothing from the shots (zero-shot)
    is simply fitted on the novel names."""
    if not method.uses_shots:
        return accuracy(bind(method.fit(novel, options), novel, method.name), novel)
    with tempfile.TemporaryDirectory(prefix="clipsuite-b2n-") as tmp:
        path = save_adapter(Path(tmp) / "adapter.safetensors", module, method.name, base.class_names, base.clip)
        return accuracy(load_classifier(path, base.clip, novel.class_names), novel)


def run(clip: ClipModel, split: Split, methods: Sequence[str], shots: int, seeds: Sequence[int],
        options: MethodOptions | None = None, views: int = 10, output_dir: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None, on_row: Callable[[Row], None] | None = None,
        protocol: str = "few-shot") -> list[Row]:
    """Every method on every seed's K-shot draw (base classes only for ``base-to-novel``, whose rows also
    hold the novel accuracy and the harmonic mean); adapters saved as ``output_dir/<method>-<K>shot-seed<s>``.
    Descriptions for the methods that need them ride in ``options.descriptions``."""
    if protocol not in PROTOCOLS:
        raise InputError(f"protocol '{protocol}': use few-shot or base-to-novel")
    chosen = [find_method(name) for name in methods]  # an unknown name fails before any encoding
    options = options or MethodOptions()
    rows = []
    for seed in seeds:
        if protocol == "few-shot":
            data, novel = prepare(clip, split, shots, seed, views, cache_dir), None
        else:
            data = prepare(clip, base_novel(split, "base"), shots, seed, views, cache_dir)
            novel = AdaptData(clip, base_novel(split, "novel"), shots, seed, views=0, cache_dir=cache_dir)
        for method in chosen:
            target = Path(output_dir) / f"{method.name}-{shots}shot-seed{seed}.safetensors" if output_dir else None
            classifier, row = train_one(method.name, data, options, target)
            if novel is not None:
                row.novel = novel_accuracy(method, classifier.module, data, novel, options)
                row.hm = harmonic_mean(row.accuracy, row.novel)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def train_adapt_run(adapt: AdaptRun, clip: ClipModel, split: Split, methods: Sequence[str],
                    output: str | os.PathLike[str], csv_path: str | os.PathLike[str] | None = None,
                    on_row: Callable[[Row], None] | None = None) -> tuple[list[Row], Path]:
    """``clipsuite adapt train``'s run: a ``.safetensors`` output gets the one adapter and its table beside
    it (same stem); a folder gets every adapter and ``results.csv``, staged and swapped in. Returns the rows
    and where their table is."""
    output, options = Path(output), adapt.method_options()
    if output.suffix == ".safetensors":
        data = prepare(clip, split, adapt.shots, adapt.seed_list[0], adapt.views, adapt.cache_dir)
        _, row = train_one(methods[0], data, options, output)
        return [row], write_csv(csv_path or output.with_suffix(".csv"), [row])
    from clipsuite.core.staging import staged_folder

    with staged_folder(output, command="adapt train", flag="--output") as stage:
        rows = run(clip, split, methods, adapt.shots, adapt.seed_list, options, views=adapt.views,
                   output_dir=stage, cache_dir=adapt.cache_dir, on_row=on_row)
        if csv_path is None:
            write_csv(stage / "results.csv", rows)
    return rows, write_csv(csv_path, rows) if csv_path is not None else output / "results.csv"


def evaluate_file(path: str | os.PathLike[str], clip: ClipModel, split: Split, part: str = "test") -> Row:
    """Score a saved adapter on a split part (its class names must match the split's)."""
    classifier = load_classifier(path, clip)
    if classifier.class_names != split.class_names:
        classifier = load_classifier(path, clip, split.class_names)  # learned prompts transfer
    config = classifier.config
    data = AdaptData(clip, split, int(config.get("shots", 0)), int(config.get("seed", 0)))
    return Row(classifier.method, data.shots, data.seed, accuracy(classifier, data, part))
