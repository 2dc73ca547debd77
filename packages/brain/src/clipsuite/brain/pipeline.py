"""The steps the CLI runs, as functions: prepare a subject, fit/apply a decoder (ridge or MLP), score
it, encode.

A fitted decoder is a folder (``decoders.py``): the kind's weights and ``decoder.json`` (the kind, the
CLIP model spec, the preprocessing, the voxel count). Decoding a dataset repeats the stored
preprocessing (same split, same z-scoring) exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipsuite.brain.data import BrainData, DatasetConfig, load_config, load_subject
from clipsuite.brain.decoders import META_FILE, Decoder, MLPDecoder, RidgeDecoder
from clipsuite.brain.decoders import read_decoder as read_decoder  # re-exported: the CLI's and demo's name
from clipsuite.brain.evaluate import category_decoding, pairwise_identification, retrieval
from clipsuite.brain.features import StimulusFeatures, encode_stimuli
from clipsuite.brain.losses import LossSchedule
from clipsuite.brain.methods.mlp import BrainMLP, MLPConfig
from clipsuite.brain.prep import PrepConfig, Samples, Stimulus, check_stimuli, prepare, read_stimuli
from clipsuite.brain.ridge import AlphaChoice, alpha_choice, fit_ridge_cv
from clipsuite.brain.train import DecoderDataset, DecoderObjective, DecoderTask, LossSettings
from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel
from clipsuite.core.staging import atomic_write_json, staged_folder
from clipsuite.core.train import TrainConfig, Trainer, TrainResult

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
    if config.format == "nsd":  # the release's own design, brick and captions describe the stimuli
        from clipsuite.brain.nsd import load_nsd

        data, stimuli = load_nsd(config, on_session)
    else:
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


def voxel_digest(data: BrainData) -> str:
    """Which voxels, in which order, the response columns are (the mask's grid and the kept voxels)."""
    digest = hashlib.sha256(repr(data.grid).encode())
    digest.update(np.ascontiguousarray(data.voxels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _meta(subject: Subject, kind: str, model_spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "clip": model_spec, "prep": dataclasses.asdict(subject.prep),
            "n_voxels": subject.data.n_voxels, "voxels": voxel_digest(subject.data),
            "train_stimuli": sorted(set(subject.train.stimulus.tolist())), "dataset": str(subject.config.path),
            **extra}


@dataclass(frozen=True)
class FittedDecoder:
    """A decoder folder written by ``fit_decoder`` or ``fit_mlp_decoder``, and what its fit did."""

    path: Path
    alphas: dict[str, AlphaChoice] = field(default_factory=dict)  # ridge: the alphas CV chose, per CLIP space
    train: TrainResult | None = None  # mlp: the core Trainer's result (steps, final loss, held-out figures)
    main_process: bool = True         # mlp under a multi-process launch: False on the others (they save nothing)


def fit_decoder(subject: Subject, features: StimulusFeatures, alphas: list[float], cv: str | int, out: str | Path,
                model_spec: dict[str, Any], device: str | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> FittedDecoder:
    """Ridge from voxels to each CLIP space, alphas chosen per embedding dimension; saved to ``out`` with
    the alphas chosen and the cross-validated score (``meta.json``'s ``alpha_choice``)."""
    rows = features.rows(subject.train.stimulus)
    targets = {space: getattr(features, space)[rows] for space in SPACES}
    fitted = RidgeDecoder({space: fit_ridge_cv(subject.train.responses, targets[space], alphas, cv=cv, device=device,
                                               dtype=torch.float32, on_progress=on_progress) for space in SPACES})
    chosen = {space: alpha_choice(fitted.models[space], alphas, targets[space]) for space in SPACES}
    with staged_folder(out, command="brain fit") as folder:
        fitted.save(folder)
        atomic_write_json(folder / META_FILE, _meta(subject, "ridge-decoder", model_spec, alphas=alphas, cv=cv,
                                                    alpha_choice={k: v.to_json() for k, v in chosen.items()}))
    return FittedDecoder(Path(out), alphas=chosen)


@dataclass(frozen=True)
class MLPFit:
    """The MLP decoder's sizes and loss settings (``TrainConfig`` holds the rest of the run)."""

    hidden: int = 4096
    blocks: int = 4
    projector: int = 0
    input_dropout: float = 0.5
    block_dropout: float = 0.15
    vae_latent: int = 0             # > 0: the VAE variant (methods/mlp.py)
    loss: LossSettings = LossSettings()


def fit_mlp_decoder(subject: Subject, features: StimulusFeatures, out: str | Path, model_spec: dict[str, Any],
                    train_config: TrainConfig, settings: MLPFit = MLPFit(),
                    options: dict[str, Any] | None = None) -> FittedDecoder:
    """Train the MindEye-style MLP decoder (BiMixCo then SoftCLIP) on the core Trainer and save it to
    ``out``; ``train_config.output_dir`` holds the run (checkpoints, ``metrics.jsonl``, resume).
    ``options``: the command's flags, stored with the run so ``--resume`` restores them."""

    run, folder = Path(train_config.output_dir).resolve(), Path(out).resolve()
    if run == folder or folder in run.parents:
        raise InputError(f"{train_config.output_dir}: the training run folder must lie outside the decoder folder "
                         f"{out} (which is replaced when training ends)")
    rows = features.rows(subject.train.stimulus)
    train = DecoderDataset(subject.train.responses, {s: getattr(features, s)[rows] for s in SPACES})
    test_rows = features.rows(subject.test.stimulus)
    held_out = DecoderDataset(subject.test.responses, {s: getattr(features, s)[test_rows] for s in SPACES})
    config = MLPConfig(n_voxels=subject.data.n_voxels, embed_dim=features.image.shape[1], hidden=settings.hidden,
                       blocks=settings.blocks, projector=settings.projector, input_dropout=settings.input_dropout,
                       block_dropout=settings.block_dropout, vae_latent=settings.vae_latent)
    loss = settings.loss
    # epochs and steps per epoch: the Trainer tells the objective before the first step (RunSteps)
    schedule = LossSchedule(train_config.epochs, loss.mixup_fraction, loss.mix_temperature, loss.soft_temperature)
    torch.manual_seed(train_config.seed)  # the initial weights, so a resumed run rebuilds the same model
    objective = DecoderObjective(BrainMLP(config), schedule, loss.text_weight, loss.kl_weight, loss.recon_weight)
    meta = _meta(subject, "mlp-decoder", model_spec, mlp=config.to_dict(),
                 fit={**dataclasses.asdict(settings), "train": train_config.to_json()})
    trainer = Trainer(DecoderTask(objective, held_out, meta), train_config, options)
    result = trainer.fit(train)
    main = trainer.accelerator is None or trainer.accelerator.is_main_process
    if main:
        decoder = MLPDecoder(objective.decoder.cpu().eval())
        with staged_folder(out, command="brain fit") as folder:
            decoder.save(folder)
            atomic_write_json(folder / META_FILE, {**meta, "trained_steps": result.step,
                                                   "eval": {k: v for k, v in result.metrics.items()
                                                            if k.startswith("eval/")}})
            log = Path(train_config.output_dir) / "metrics.jsonl"
            if log.is_file():
                shutil.copyfile(log, folder / "metrics.jsonl")
    return FittedDecoder(Path(out), train=result, main_process=main)


def prep_from(meta: dict[str, Any]) -> PrepConfig:
    return PrepConfig(**meta["prep"])


def decode(decoder: Decoder, meta: dict[str, Any], samples: Samples, source: str,
           subject: Subject | None = None) -> dict[str, np.ndarray]:
    """The decoder's predictions for ``samples``; with ``subject`` (whose samples they are), also refuses
    voxels other than the decoder's and held-out stimuli the decoder was trained on (decoders written
    before these were recorded are not checked for them)."""
    if samples.responses.shape[1] != meta["n_voxels"]:
        raise InputError(f"{source}: {samples.responses.shape[1]} usable voxels, the decoder was fitted on "
                         f"{meta['n_voxels']} (another mask or subject?)")
    if subject is not None:
        if "voxels" in meta and meta["voxels"] != voxel_digest(subject.data):
            raise InputError(f"{source}: its usable voxels are not the ones the decoder was fitted on (same count, "
                             f"other positions: another mask or subject?)")
        seen = set(meta.get("train_stimuli", ())) & set(samples.stimulus.tolist())
        if seen:
            raise InputError(f"{source}: {len(seen)} of the {len(set(samples.stimulus.tolist()))} held-out stimuli "
                             f"(e.g. '{min(seen)}') were training stimuli of the decoder (fitted on "
                             f"{meta.get('dataset')}): its split differs here; evaluate on the dataset it was fitted "
                             "on, or give the stimulus table a split column")
    return decoder.predict(samples.responses)


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

