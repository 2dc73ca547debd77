"""Train, evaluate and compare methods: one row (method, shots, seed, accuracy) per run.

``run`` draws the K-shot subset per seed, encodes the images once per draw, fits every asked method
on that shared draw and scores it on the test part, the way the few-shot papers build their tables.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from clipsuite.core.adapt.data import AdaptData
from clipsuite.core.adapt.fewshot_data import Split, few_shot
from clipsuite.core.adapt.io import LearnedClassifier, load_classifier, save_adapter
from clipsuite.core.adapt.registry import MethodOptions, find_method
from clipsuite.core.checkpoints import atomic_write_text
from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel
from clipsuite.core.seeds import group_over_seeds, mean_sd
from clipsuite.core.tabular import format_table

COLUMNS = ("method", "shots", "seed", "accuracy")


@dataclass
class Row:
    method: str
    shots: int
    seed: int
    accuracy: float  # top-1 on the test part, in percent


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


def run(clip: ClipModel, split: Split, methods: Sequence[str], shots: int, seeds: Sequence[int],
        options: MethodOptions | None = None, views: int = 10, output_dir: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        on_row: Callable[[Row], None] | None = None) -> list[Row]:
    """Every method on every seed's K-shot draw; adapters saved as ``output_dir/<method>-<K>shot-seed<s>``."""
    rows = []
    for seed in seeds:
        data = prepare(clip, split, shots, seed, views, cache_dir)
        for method in methods:
            target = (Path(output_dir) / f"{method}-{shots}shot-seed{seed}.safetensors") if output_dir else None
            _, row = train_one(method, data, options, target)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def evaluate_file(path: str | os.PathLike[str], clip: ClipModel, split: Split, part: str = "test") -> Row:
    """Score a saved adapter on a split part (its class names must match the split's)."""
    classifier = load_classifier(path, clip)
    if classifier.class_names != split.class_names:
        classifier = load_classifier(path, clip, split.class_names)  # learned prompts transfer
    config = classifier.config
    data = AdaptData(clip, split, int(config.get("shots", 0)), int(config.get("seed", 0)))
    return Row(classifier.method, data.shots, data.seed, accuracy(classifier, data, part))


def summarize(rows: Sequence[Row]) -> list[dict[str, object]]:
    """Mean and standard deviation over seeds per (method, shots), in first-seen order (papers' tables)."""
    summary: list[dict[str, object]] = []
    for (method, shots), group in group_over_seeds(rows, lambda r: (r.method, r.shots)).items():
        mean, std = mean_sd([r.accuracy for r in group])
        summary.append({"method": method, "shots": shots, "seeds": len(group), "mean": mean, "std": std})
    return summary


def rows_to_csv(rows: Sequence[Row]) -> str:
    return format_table([{"method": r.method, "shots": r.shots, "seed": r.seed, "accuracy": f"{r.accuracy:.2f}"}
                         for r in rows], COLUMNS)


def write_csv(path: str | os.PathLike[str], rows: Sequence[Row]) -> Path:
    atomic_write_text(path, rows_to_csv(rows))
    return Path(path)
