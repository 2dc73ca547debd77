"""The steps the CLI runs, as functions: prepare a subject, fit/apply the ridge decoder, score it, encode.

A fitted decoder is a folder: ``image.safetensors`` and ``text.safetensors`` (ridge voxels -> CLIP
image / text embedding) and ``decoder.json`` (the CLIP model spec, the preprocessing, the voxel
count). Decoding a dataset repeats the stored preprocessing (same split, same z-scoring) exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipsuite.brain.data import BrainData, DatasetConfig, load_config, load_subject
from clipsuite.brain.evaluate import category_decoding, pairwise_identification, retrieval
from clipsuite.brain.features import StimulusFeatures, encode_stimuli
from clipsuite.brain.prep import PrepConfig, Samples, Stimulus, check_stimuli, prepare, read_stimuli
from clipsuite.brain.ridge import RidgeModel, fit_ridge_cv
from clipsuite.core.checkpoints import read_json
from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel
from clipsuite.core.staging import atomic_write_json, staged_folder

SPACES = ("image", "text")


@dataclass
class Subject:
    config: DatasetConfig
    data: BrainData
    stimuli: dict[str, Stimulus]
    prep: PrepConfig
    train: Samples
    test: Samples
    test_trials: Samples          # z-scored single test trials (noise ceiling)


def load_prepared(dataset: str | Path, prep: PrepConfig,
                  on_session: Callable[[int, int], None] | None = None) -> Subject:
    config = load_config(dataset)
    if config.stimuli is None:
        raise InputError(f"{config.path}: needs a 'stimuli' table (stimulus, image, caption, category, split)")
    data = load_subject(config, on_session)
    stimuli = read_stimuli(config.stimuli)
    check_stimuli(data, stimuli, config.stimuli)
    train, test = prepare(data, stimuli, prep)
    single = prepare(data, stimuli, dataclasses.replace(prep, test_repetitions="single"))[1]
    return Subject(config, data, stimuli, prep, train, test, single)


def subject_features(clip: ClipModel, subject: Subject, cache_dir: str | Path | None) -> StimulusFeatures:
    used = sorted(set(subject.data.stimulus.tolist()))
    return encode_stimuli(clip, [subject.stimuli[s] for s in used], cache_dir)


def fit_decoder(subject: Subject, features: StimulusFeatures, alphas: list[float], cv: str | int, out: str | Path,
                model_spec: dict[str, Any], device: str | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> Path:
    """Ridge from voxels to each CLIP space, alphas chosen per embedding dimension; saved to ``out``."""
    rows = features.rows(subject.train.stimulus)
    fitted = {space: fit_ridge_cv(subject.train.responses, getattr(features, space)[rows], alphas, cv=cv,
                                  device=device, dtype=torch.float32, on_progress=on_progress) for space in SPACES}
    with staged_folder(out) as folder:
        for space, model in fitted.items():
            model.save(folder / f"{space}.safetensors", {"space": space})
        atomic_write_json(folder / "decoder.json", {
            "kind": "ridge-decoder", "clip": model_spec, "prep": dataclasses.asdict(subject.prep),
            "n_voxels": subject.data.n_voxels, "dataset": str(subject.config.path), "alphas": alphas, "cv": cv})
    return Path(out)


def read_decoder(folder: str | Path) -> tuple[dict[str, RidgeModel], dict[str, Any]]:
    folder = Path(folder)
    meta = read_json(folder / "decoder.json")
    if not isinstance(meta, dict) or meta.get("kind") != "ridge-decoder":
        raise InputError(f"{folder / 'decoder.json'}: not a clipsuite ridge decoder")
    return {space: RidgeModel.load(folder / f"{space}.safetensors")[0] for space in SPACES}, meta


def prep_from(meta: dict[str, Any]) -> PrepConfig:
    return PrepConfig(**meta["prep"])


def decode(models: dict[str, RidgeModel], meta: dict[str, Any], samples: Samples, source: str) -> dict[str, np.ndarray]:
    if samples.responses.shape[1] != meta["n_voxels"]:
        raise InputError(f"{source}: {samples.responses.shape[1]} usable voxels, the decoder was fitted on "
                         f"{meta['n_voxels']} (another mask or subject?)")
    return {space: model.predict(samples.responses).float().cpu().numpy() for space, model in models.items()}


def decoding_metrics(decoded: dict[str, np.ndarray], subject: Subject, features: StimulusFeatures,
                     clip: ClipModel | None = None, n_way: int = 300, draws: int = 30) -> dict[str, float]:
    """Retrieval and pairwise identification per space; category decoding (image space: candidates are
    the mean image embeddings of each category's training stimuli; text space: zero-shot, the text
    embedding of "a photo of a {category}")."""
    ids = subject.test.stimulus
    rows = features.rows(ids)
    out: dict[str, float] = {}
    for space, pred in decoded.items():
        truth = getattr(features, space)[rows]
        for key, value in retrieval(pred, truth, n_way, draws).items():
            out[f"{space}_{key}"] = value
        out[f"{space}_pairwise"] = pairwise_identification(pred, truth)
    cats = sorted({subject.stimuli[s].category for s in ids})
    if cats and "" not in cats:
        labels = [cats.index(subject.stimuli[s].category) for s in ids]
        train_ids = subject.train.stimulus
        train_cats = np.asarray([subject.stimuli[s].category for s in train_ids])
        if all((train_cats == c).any() for c in cats):
            image = features.image[features.rows(train_ids)]
            protos = np.stack([image[train_cats == c].mean(0) for c in cats])
            for key, value in category_decoding(decoded["image"], protos, labels).items():
                out[f"image_category_{key}"] = value
        if clip is not None:
            names = clip.encode_texts([f"a photo of a {c}" for c in cats]).float().numpy()
            for key, value in category_decoding(decoded["text"], names, labels).items():
                out[f"text_category_{key}"] = value
    return out

