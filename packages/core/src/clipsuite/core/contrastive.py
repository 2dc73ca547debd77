"""Contrastive fine-tuning of a ``ClipModel`` (CLIP or SigLIP loss) as a task for the Trainer,
plus ``train_contrastive``: image-text data (a file, pairs in memory, or a Dataset) -> trained model
folder that ``load_model(folder)`` reads.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence, Sized
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset

from clipsuite.core.contrastive_run import ContrastiveConfig, ContrastiveRun
from clipsuite.core.data import (
    DEFAULT_CAPTION_COLUMN,
    DEFAULT_IMAGE_COLUMN,
    CaptionedDataset,
    ImageTextDataset,
    Pair,
    pairs_from,
    read_pairs,
    verify_images,
)
from clipsuite.core.errors import InputError
from clipsuite.core.losses import clip_loss, same_caption_targets, siglip_loss, soft_clip_loss
from clipsuite.core.metrics import retrieval_metrics
from clipsuite.core.models import ClipModel, load_model
from clipsuite.core.retrieval import caption_index
from clipsuite.core.run_folder import check_output_folder
from clipsuite.core.train import TrainConfig, TrainResult, fit_and_save_clip

logger = logging.getLogger("clipsuite.core.contrastive")
REPEAT_NOTE_SHARE = 0.05  # say so when at least this share of a batch's captions repeat within it
MAX_LOGIT_SCALE = math.log(100)  # open_clip clamps the learned temperature here
SIGLIP_INIT_BIAS = -10.0          # SigLIP paper's initial bias (with scale log 10 from scratch)


def _lock(model: torch.nn.Module, tower: str) -> None:
    locker = getattr(model, f"lock_{tower}_tower", None)
    if callable(locker):
        locker()
    part = model.visual if tower == "image" else getattr(model, "text", None)
    if part is not None:
        part.requires_grad_(False)
    elif tower == "text":  # open_clip's built-in text transformer lives on the CLIP module itself
        for name in ("token_embedding", "transformer", "ln_final"):
            getattr(model, name).requires_grad_(False)
        for name in ("positional_embedding", "text_projection"):
            tensor = getattr(model, name, None)
            if isinstance(tensor, torch.nn.Parameter):
                tensor.requires_grad_(False)


def repeated_caption_share(captions: Sequence[str], batch_size: int) -> float:
    """Expected share of a batch's rows whose caption appears again in the same batch, for batches of
    ``batch_size`` drawn without replacement. A row's batch-mates are a uniform draw of ``b - 1`` of the
    other ``n - 1`` pairs, so a caption held by ``c`` pairs misses all its twins with probability
    ``C(n - c, b - 1) / C(n - 1, b - 1)``."""
    n = len(captions)
    others = min(batch_size, n) - 1
    if others < 1:
        return 0.0
    repeated = 0.0
    for c, captions_with_c in Counter(Counter(captions).values()).items():
        if c < 2:
            continue
        miss = 1.0
        for k in range(others):
            miss *= max(0.0, (n - c - k) / (n - 1 - k))
        repeated += captions_with_c * c * (1.0 - miss)
    return repeated / n


def repeated_caption_note(captions: Sequence[str], batch_size: int, settings: ContrastiveConfig) -> str | None:
    """One line when captions repeat within batches (class-style captions) and the loss would push
    identical texts apart; ``None`` otherwise."""
    if settings.shared_positives:
        return None
    share = repeated_caption_share(captions, batch_size)
    if share < REPEAT_NOTE_SHARE:
        return None
    fix = "--shared-positives" if settings.loss == "clip" else "--loss clip --shared-positives"
    return (f"{share:.0%} of the captions in a batch of {batch_size} repeat within it ({len(set(captions))} "
            f"distinct captions for {len(captions)} pairs): {settings.loss} loss pushes identical captions "
            f"apart as negatives; {fix} counts them as positives for each other")


class ContrastiveTask:
    """Batches ``{"image", "text"}`` -> CLIP or SigLIP loss on the normalized embeddings."""

    # clip.model, an nn.Module used through open_clip's CLIP surface (logit_scale, logit_bias, encode_image,
    # encode_text): open_clip's CLIP (untyped) or TransformersCLIP
    module: Any

    def __init__(self, clip: ClipModel, config: ContrastiveConfig | None = None,
                 eval_data: Dataset | None = None, eval_batch_size: int = 64) -> None:
        self.clip = clip
        self.settings = config or ContrastiveConfig()
        self.eval_data = eval_data
        self.eval_batch_size = eval_batch_size
        model: Any = clip.model  # (see ``module``)
        model.logit_scale.requires_grad_(self.settings.learn_logit_scale)
        if self.settings.init_logit_scale is not None:
            with torch.no_grad():
                model.logit_scale.fill_(self.settings.init_logit_scale)
        if self.settings.loss == "siglip":
            bias = self.settings.init_logit_bias
            if getattr(model, "logit_bias", None) is None:  # register it the way open_clip builds it
                model.logit_bias = torch.nn.Parameter(torch.tensor(SIGLIP_INIT_BIAS if bias is None else bias,
                                                                   device=model.logit_scale.device))
            elif bias is not None:
                with torch.no_grad():
                    model.logit_bias.fill_(bias)
            clip.config["model_cfg"]["init_logit_bias"] = float(model.logit_bias.detach())
        if self.settings.lock_image:
            _lock(model, "image")
        if self.settings.lock_text:
            _lock(model, "text")
        self.module = model

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        model = self.module
        images = model.encode_image(batch["image"], normalize=True)
        texts = model.encode_text(batch["text"], normalize=True)
        scale = model.logit_scale.exp()
        bias = getattr(model, "logit_bias", None)
        if self.settings.loss == "siglip":
            loss = siglip_loss(images, texts, scale, bias)
        elif self.settings.shared_positives:
            loss = soft_clip_loss(images, texts, scale, same_caption_targets(batch["text"]))
        else:
            loss = clip_loss(images, texts, scale, bias, local_loss=self.settings.local_loss,
                             gather_with_grad=self.settings.gather_with_grad)
        return {"loss": loss, "logit_scale": scale.detach()}

    @torch.no_grad()
    def after_step(self) -> None:
        self.module.logit_scale.clamp_(0, MAX_LOGIT_SCALE)

    def evaluate(self) -> dict[str, float]:
        """Retrieval recall on the held-out pairs (when given)."""
        if self.eval_data is None:
            return {}
        model = self.module
        device = model.logit_scale.device
        images, texts = [], []
        loader = DataLoader(self.eval_data, batch_size=self.eval_batch_size)
        for batch in loader:
            images.append(model.encode_image(batch["image"].to(device), normalize=True).float().cpu())
            texts.append(model.encode_text(batch["text"].to(device), normalize=True).float().cpu())
        image_features, owners = torch.cat(images), torch.arange(len(cast(Sized, self.eval_data)))
        if isinstance(self.eval_data, ImageTextDataset):  # an image with several captions is ranked once
            index = caption_index(self.eval_data.pairs)
            image_features, owners = image_features[index.first_pair], index.owners
        metrics = retrieval_metrics(image_features, torch.cat(texts), owners, ks=(1, 5))
        return {"i2t_R@1": metrics["image_to_text_R@1"], "t2i_R@1": metrics["text_to_image_R@1"],
                "mean_recall": metrics["mean_recall"]}

    def config(self) -> dict[str, Any]:
        return {"task": "contrastive", "model": self.clip.name, **asdict(self.settings)}


@dataclass
class ContrastiveResult:
    output_dir: Path       # the trained model: load_model(output_dir)
    model: ClipModel
    train: TrainResult
    main_process: bool = True  # False on the other processes of a multi-process launch


def _holdout(count: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(training positions, held-out positions): a seeded draw of ``fraction`` (at most 512) held out."""
    if fraction <= 0:
        return list(range(count)), []
    held_count = min(512, max(1, int(count * fraction)))
    if held_count >= count:
        raise InputError(f"{count} pairs are too few to hold out {held_count} for evaluation")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    held = set(order[:held_count])
    return [i for i in range(count) if i not in held], sorted(held)


def _image_text(source: Dataset | list[Pair], positions: list[int], clip: ClipModel, transform: Any) -> Dataset:
    """The samples at ``positions`` of pairs or of a Dataset of pairs, preprocessed and tokenized."""
    if isinstance(source, Dataset):
        return CaptionedDataset(Subset(source, positions), transform, clip.tokenizer)
    return ImageTextDataset([source[i] for i in positions], transform, clip.tokenizer)


def _rebuilt(model: str, pretrained: str | None, settings: ContrastiveConfig, cfg: TrainConfig,
             result: TrainResult) -> ClipModel:
    """The model as ``train_contrastive`` built it, with the trained weights (EMA's when kept) loaded."""
    from clipsuite.core.train import load_trainable
    from clipsuite.core.train.checkpointing import EMA_FILE

    torch.manual_seed(cfg.seed)
    clip = load_model(model, pretrained=pretrained, device="cpu")
    ContrastiveTask(clip, settings)  # the same changes to the model (SigLIP's bias, locked towers)
    weights = result.output_dir / EMA_FILE if cfg.ema_decay else result.checkpoint
    assert weights is not None  # a finished fit records its checkpoint
    load_trainable(clip.model, weights)
    return clip


PairItem = Pair | tuple[str | os.PathLike[str] | Image.Image, str]
ContrastiveData = str | os.PathLike[str] | Sequence[PairItem] | Dataset


def train_contrastive(data: ContrastiveData, output_dir: str | os.PathLike[str], model: str = "tiny",
                      pretrained: str | None = None, contrastive: ContrastiveConfig | None = None,
                      image_column: str = DEFAULT_IMAGE_COLUMN, caption_column: str = DEFAULT_CAPTION_COLUMN,
                      split: str | None = None, verify: bool = True, holdout: float = 0.0,
                      augment: bool = True, overwrite: bool = False, options: Mapping[str, Any] | None = None,
                      **train_options: Any) -> ContrastiveResult:
    """Fine-tune (or train from scratch) ``model`` on image-text data and save it.

    ``data``: a file or shard source (``clipsuite.core.data.read_pairs``: CSV/TSV/JSONL, Karpathy JSON,
    webdataset shards); a sequence of ``(image, caption)`` pairs held in memory (image a path or a PIL
    image; ``Pair`` objects too); or a torch ``Dataset`` of such pairs (its images may also be
    preprocessed tensors, used as they are). ``train_options`` are ``TrainConfig`` fields (epochs,
    batch_size, lr, precision, grad_accum, resume, ...). Files and pairs are checked before anything
    is written (columns, files, and with ``verify`` every image decoded once); a Dataset is read
    lazily, so its problems surface when its items are. A fresh run that fails leaves no output
    folder behind. ``holdout`` keeps that fraction of pairs (at most 512) for retrieval recall at
    each epoch end. A folder holding an earlier run is only reused with ``resume`` or ``overwrite``.
    ``options``: how the calling command was started, stored with the run (``train.run_options``).
    """
    settings = contrastive or ContrastiveConfig()
    out = Path(output_dir)
    cfg = TrainConfig(output_dir=out, **train_options)
    check_output_folder(out, cfg.resume, overwrite)  # a run of its own, or a new or empty folder
    source: Dataset | list[Pair]
    if isinstance(data, Dataset):
        source = data
    else:
        source = (read_pairs(data, image_column=image_column, caption_column=caption_column, split=split)
                  if isinstance(data, (str, os.PathLike)) else pairs_from(data))
        if verify:
            verify_images(source)
    train_at, held_at = _holdout(len(source), holdout, cfg.seed)  # type: ignore[arg-type]  # map-style: has len
    torch.manual_seed(cfg.seed)  # a model built from scratch is the same on resume
    clip = load_model(model, pretrained=pretrained, device="cpu")
    dataset = _image_text(source, train_at, clip, clip.preprocess_train if augment else clip.preprocess)
    eval_data = _image_text(source, held_at, clip, clip.preprocess) if held_at else None
    task = ContrastiveTask(clip, settings, eval_data)
    if isinstance(source, list):  # said once the inputs and the model are known good; a Dataset is read lazily
        note = repeated_caption_note([source[i].caption for i in train_at], cfg.batch_size, settings)
        if note is not None:
            logger.warning(note)
    clip, result, main = fit_and_save_clip(task, cfg, dataset, clip, options,
                                           rebuild=lambda done: _rebuilt(model, pretrained, settings, cfg, done))
    return ContrastiveResult(output_dir=out, model=clip, train=result, main_process=main)


def train_run(run: ContrastiveRun, output_dir: str | os.PathLike[str], resume: bool = False, overwrite: bool = False,
              verify: bool = True, num_workers: int = 0, progress: bool = True) -> ContrastiveResult:
    """Run a checked ``ContrastiveRun`` into ``output_dir``; the config is stored with the run for ``--resume``.
    The other arguments are how this invocation runs, not what the run is."""
    assert run.data is not None  # ContrastiveRun refuses a run without data
    return train_contrastive(
        run.data, output_dir, run.model, pretrained=run.pretrained, contrastive=run.loss_settings(),
        image_column=run.image_column, caption_column=run.caption_column, split=run.split, verify=verify,
        holdout=run.holdout, overwrite=overwrite, options=run.to_options(), epochs=run.epochs,
        max_steps=run.max_steps, batch_size=run.batch_size, lr=run.lr, weight_decay=run.weight_decay,
        warmup_steps=run.warmup, precision=run.precision, grad_accum=run.grad_accum,
        grad_checkpointing=run.grad_checkpointing, ema_decay=run.ema, checkpoint_every=run.checkpoint_every,
        resume=resume, num_workers=num_workers, seed=run.seed, distributed=run.distributed, progress=progress)
