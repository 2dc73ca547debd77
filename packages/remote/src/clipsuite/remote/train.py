"""RS-M-CLIP-style fine-tuning as a task for the core ``Trainer``.

The loss is CLIP's contrastive loss over captions in several languages (``data.MultilingualPairs``:
every caption in every language once per epoch, languages mixed in each batch) plus, with
``distill_weight > 0``, the self-distillation term of RS-M-CLIP: the image tower and a projector
head (student) match an EMA teacher of themselves across two global and several local crops
(``methods.self_distillation``). Positives of the contrastive loss are every caption of an image, in
whatever language it is drawn: two images that share a caption are not pushed apart.

``train_remote`` loads the model (adapting its patch embedding to N bands for multispectral data),
reads the data, trains, and saves a folder that ``load_model(folder)`` reads, band count included.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

from clipsuite.core.errors import InputError
from clipsuite.core.metrics import retrieval_metrics
from clipsuite.core.models import ClipEncoders, ClipModel, load_model
from clipsuite.core.run_folder import check_output_folder
from clipsuite.core.towers import vision_tower
from clipsuite.core.towers.bands import BAND_RULES
from clipsuite.core.train import TrainConfig, TrainResult, fit_and_save_clip
from clipsuite.core.train.task import RunSteps
from clipsuite.remote.data import (
    CaptionedImages,
    MultilingualPairs,
    RasterInput,
    captioned_images,
    class_folder_pairs,
    read_captioned,
)
from clipsuite.remote.distributed import gathered_soft_clip_loss, world
from clipsuite.remote.evaluate import read_translations
from clipsuite.remote.held_out import check_held_out
from clipsuite.remote.methods.self_distillation import (
    EmaTeacher,
    ProjectorHead,
    dino_loss,
    random_resized_crops,
    teacher_momentum,
    teacher_temperature,
    update_center,
)
from clipsuite.remote.rasters import S2_L2A_OFFSET_DN, open_raster
from clipsuite.remote.train_run import RemoteRun, RemoteTrainConfig  # the method's settings live torch-free

MAX_LOGIT_SCALE = 4.605170185988092  # log(100), open_clip's clamp


class ImageBranch(nn.Module):
    """Image tower + projector head: the student of self-distillation, and the code its teacher runs."""

    def __init__(self, clip: ClipModel, head: ProjectorHead) -> None:
        super().__init__()
        self.visual = clip.image_encoder
        self.head = head
        self._tower = [vision_tower(clip)]  # not a module: the steps over ``visual``

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self._tower[0].forward(pixels))


class TrainedClip(ClipEncoders, Protocol):
    """What training reads of the CLIP model (open_clip's ``CLIP`` surface): its encoders and learnt
    temperature."""

    logit_scale: torch.Tensor


class RemoteTrainModule(nn.Module):
    """What the Trainer trains: the CLIP model and (with self-distillation) the projector head; the
    teacher's weights and DINO's centre are buffers, so checkpoints carry them."""

    center: torch.Tensor  # the registered buffers
    draws: torch.Tensor
    steps: torch.Tensor

    def __init__(self, model: nn.Module, head: ProjectorHead | None, teacher: EmaTeacher | None) -> None:
        super().__init__()
        self.model = model
        self.head = head
        self.teacher = teacher
        if head is not None:
            self.register_buffer("center", torch.zeros(head.prototypes.shape[0]))
        # loss calls so far: crops are drawn from (seed, draws), so a resumed run draws what the
        # uninterrupted one would, and a run without self-distillation draws the same contrastive views
        self.register_buffer("draws", torch.zeros((), dtype=torch.long))
        # optimizer steps so far, for the teacher's schedules (checkpointed: a resumed run continues them)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))


class RemoteTrainTask:
    """Batches ``{"image", "text", "image_id", "caption_id"}`` -> contrastive (+ weighted self-distillation) loss."""

    def __init__(self, clip: ClipModel, data: CaptionedImages, settings: RemoteTrainConfig | None = None,
                 eval_data: CaptionedImages | None = None, eval_batch_size: int = 64, seed: int = 0) -> None:
        self.clip, self.seed = clip, seed
        self.settings = settings or RemoteTrainConfig()
        self.data, self.eval_data, self.eval_batch_size = data, eval_data, eval_batch_size
        self.owns = data.owns()
        self.tower = vision_tower(clip)
        clip.train_temperature(self.settings.learn_logit_scale)
        head = teacher = None
        self.branch: ImageBranch | None = None
        if self.settings.distill_weight > 0:
            head = ProjectorHead(self.tower.output_dim, self.settings.head_hidden, self.settings.head_bottleneck,
                                 self.settings.head_out)
            self.branch = ImageBranch(clip, head)
            teacher = EmaTeacher(self.branch, self.settings.teacher_decay)
        self.module = RemoteTrainModule(clip.network, head, teacher)
        patch = self.tower.patch_size[0]
        size = self.settings.local_size or clip.image_size // 2
        self.local_size = max(patch, size // patch * patch)
        self.total_steps = 0  # told by the Trainer (start_schedule); 0: the teacher decay stays at its start

    def start_schedule(self, steps: RunSteps) -> None:
        self.total_steps = steps.total

    def teacher_decay_now(self) -> float:
        settings = self.settings
        if not self.total_steps:
            return settings.teacher_decay
        return teacher_momentum(int(self.module.steps), self.total_steps, settings.teacher_decay,
                                settings.teacher_decay_end)

    def teacher_temp_now(self) -> float:
        settings = self.settings
        start = settings.teacher_temp if settings.teacher_temp_start is None else settings.teacher_temp_start
        return teacher_temperature(int(self.module.steps), settings.teacher_temp_warmup_steps, start,
                                   settings.teacher_temp)

    # ---- batches -------------------------------------------------------------------------------
    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        # ids, not targets: across processes the targets are made on the gathered global batch
        return {"image": torch.stack([item["image"] for item in items]),
                "text": self.clip.tokenizer([item["text"] for item in items]),
                "image_id": torch.tensor([item["image_id"] for item in items]),
                "caption_id": torch.tensor([item["caption_id"] for item in items])}

    # ---- the loss ------------------------------------------------------------------------------
    def _generators(self) -> tuple[torch.Generator, torch.Generator]:
        """(contrastive view, self-distillation views) generators of this loss call."""
        draw = int(self.module.draws)
        self.module.draws += 1
        base = (self.seed * 1_000_003 + draw) * 2
        return torch.Generator().manual_seed(base), torch.Generator().manual_seed(base + 1)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        settings, model = self.settings, cast(TrainedClip, self.module.model)
        images = batch["image"]
        size, count = images.shape[-1], images.shape[0]
        view_rng, distill_rng = self._generators()
        part = world()  # crops drawn for the global batch: N processes crop as one
        first = (random_resized_crops(images, size, settings.global_scale, generator=view_rng, part=part)
                 if settings.augment else images)
        parts: dict[str, torch.Tensor] = {}
        if self.branch is not None:
            second = random_resized_crops(images, size, settings.global_scale, generator=distill_rng, part=part)
            global_views = torch.cat([first, second])
            features = self.tower.forward(global_views)
            image_features = F.normalize(features[:count], dim=-1)
            views = [features]
            if settings.local_crops:
                local = random_resized_crops(images.repeat(settings.local_crops, 1, 1, 1), self.local_size,
                                             settings.local_scale, generator=distill_rng, part=part,
                                             groups=settings.local_crops)
                views.append(self.tower.forward(local))
            student = self.branch.head(torch.cat(views)).split(count)
            teacher_module, center = self.module.teacher, self.module.center
            assert teacher_module is not None
            teacher = teacher_module(global_views).split(count)
            distill = dino_loss(student, teacher, center, settings.student_temp, self.teacher_temp_now())
            update_center(center, teacher, settings.center_momentum)
            parts["distill"] = distill
        else:
            image_features = F.normalize(self.tower.forward(first), dim=-1)
        text_features = model.encode_text(batch["text"], normalize=True)
        scale = model.logit_scale.exp()
        contrastive = gathered_soft_clip_loss(image_features, text_features, scale, self.owns, batch["image_id"],
                                              batch["caption_id"])
        total = contrastive + settings.distill_weight * parts["distill"] if parts else contrastive
        return {"loss": total, "contrastive": contrastive.detach(), **{k: v.detach() for k, v in parts.items()},
                "logit_scale": scale.detach()}

    @torch.no_grad()
    def after_step(self) -> None:
        cast(TrainedClip, self.module.model).logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        if self.module.teacher is not None:
            self.module.teacher.update(self.teacher_decay_now())
        self.module.steps += 1

    # ---- evaluation ----------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Held-out mean recall (%) per language (``<lang>/mean_recall``) and their mean."""
        if self.eval_data is None:
            return {}
        return held_out_recall(cast(TrainedClip, self.module.model), self.clip.tokenizer, self.eval_data,
                               self.eval_batch_size)

    def config(self) -> dict[str, Any]:
        return {"task": "remote-multilingual", "model": self.clip.name, **asdict(self.settings)}


def held_out_recall(model: TrainedClip, tokenizer: Any, data: CaptionedImages, batch_size: int = 64,
                    ) -> dict[str, float]:
    """Mean recall (R@1/5/10 both ways, in %) of ``model`` on ``data`` for each of its languages."""
    device = model.logit_scale.device
    chunks = [model.encode_image(data.pixels[i:i + batch_size].to(device), normalize=True).float().cpu()
              for i in range(0, len(data.pixels), batch_size)]
    images = torch.cat(chunks)
    owners = torch.tensor([image for image, _ in data.pairs])
    out: dict[str, float] = {}
    for language in data.languages:
        texts = [data.texts[language][caption] for _, caption in data.pairs]
        features = torch.cat([model.encode_text(tokenizer(texts[i:i + batch_size]).to(device), normalize=True)
                              .float().cpu() for i in range(0, len(texts), batch_size)])
        out[f"{language}/mean_recall"] = 100 * retrieval_metrics(images, features, owners)["mean_recall"]
    out["mean_recall"] = sum(out.values()) / len(data.languages)
    return out


# ---- from files to a trained folder ---------------------------------------------------------------
@dataclass
class TrainingData:
    """Where the training (and held-out) material is. ``source``: an image-text file (Karpathy JSON,
    CSV, JSONL, shards) or a folder of class folders (captions from the class names). ``eval_split``:
    the held-out split of the same Karpathy JSON (``eval_source`` another file instead)."""

    source: Path
    split: str | None = "train"
    eval_split: str | None = None
    eval_source: Path | None = None
    translations: Path | None = None
    raster: RasterInput | None = None

    def __post_init__(self) -> None:
        self.source = Path(self.source)
        self.eval_source = Path(self.eval_source) if self.eval_source is not None else None
        self.translations = Path(self.translations) if self.translations is not None else None

    def _load(self, source: Path, split: str | None, clip: ClipModel, languages: tuple[str, ...],
              ) -> CaptionedImages:
        if source.is_dir() and not any(source.glob("*.tar")):
            table = read_translations(self.translations) if self.translations is not None else None
            return captioned_images(class_folder_pairs(source), clip, languages, table, self.raster)
        return read_captioned(source, clip, split, languages, self.translations, self.raster)

    def load(self, clip: ClipModel, languages: tuple[str, ...]) -> tuple[CaptionedImages, CaptionedImages | None]:
        check_held_out(self.source, self.split, self.eval_split, self.eval_source)
        train = self._load(self.source, self.split, clip, languages)
        held = None
        if self.eval_source is not None or self.eval_split is not None:
            held = self._load(self.eval_source or self.source, self.eval_split, clip, languages)
        return train, held


def raster_band_count(data: TrainingData) -> int | None:
    """Bands the model must take for ``data``: the number selected, or every band of the first raster
    for ``bands=("all",)``; ``None`` for RGB data."""
    raster = data.raster
    if raster is None:
        return None
    if raster.bands is None:
        return 3
    if tuple(str(b).lower() for b in raster.bands) != ("all",):
        return len(raster.bands)
    first = _first_image(data.source)
    with open_raster(first) as dataset:
        return int(dataset.count)


def _first_image(source: Path) -> Path:
    from clipsuite.core.data import read_pairs

    if source.is_dir() and not any(source.glob("*.tar")):
        path = class_folder_pairs(source)[0].image
    else:
        path = read_pairs(source, check_files=False)[0].image
    assert isinstance(path, Path)
    return path


def _chip_size(source: Path) -> int | None:
    """Side in pixels of the first training image (None when it cannot be read here)."""
    try:
        with open_raster(_first_image(source)) as dataset:
            return int(max(dataset.width, dataset.height))
    except (InputError, IndexError, OSError):
        return None


@dataclass
class RemoteTrainResult:
    output_dir: Path          # the trained model: load_model(output_dir)
    model: ClipModel
    train: TrainResult
    held_out: dict[str, float] = field(default_factory=dict)  # last held-out recalls (when evaluated)
    main_process: bool = True


def train_remote(data: TrainingData, output_dir: str | os.PathLike[str], model: str = "tiny-multilingual",
                 pretrained: str | None = None, settings: RemoteTrainConfig | None = None,
                 band_rule: str = "repeat", overwrite: bool = False, options: Mapping[str, Any] | None = None,
                 **train_options: Any) -> RemoteTrainResult:
    """Fine-tune ``model`` on ``data`` and save it to ``output_dir`` (``load_model(output_dir)``).

    ``train_options`` are ``TrainConfig`` fields (epochs, max_steps, batch_size, lr, precision, resume
    ...). With ``data.raster`` selecting N bands the model's patch embedding is first adapted to N
    bands by ``band_rule`` (``repeat`` / ``average``). A folder holding an earlier run is only reused
    with ``resume`` or ``overwrite``; a fresh run that fails leaves no folder behind. ``options``: how
    the calling command was started, stored with the run for ``--resume`` (``core.train.run_options``).
    """
    settings = settings or RemoteTrainConfig()
    out = Path(output_dir)
    cfg = TrainConfig(output_dir=out, **train_options)
    if band_rule not in BAND_RULES:
        raise InputError(f"unknown band rule '{band_rule}' (choose from {', '.join(BAND_RULES)})")
    if cfg.distributed == "fsdp" and settings.distill_weight > 0:
        raise InputError("self-distillation runs its EMA teacher on whole weights: train it with DDP, not FSDP")
    check_output_folder(out, cfg.resume, overwrite)  # a run of its own, or a new or empty folder
    torch.manual_seed(cfg.seed)  # a model built from scratch, and the head, are the same on resume
    clip = load_model(model, pretrained=pretrained, device="cpu")
    bands = raster_band_count(data)
    if bands is not None and bands != vision_tower(clip).in_chans:
        clip.adapt_input_bands(bands, band_rule)
    if data.raster is not None and data.raster.bands is not None and \
            tuple(str(b).lower() for b in data.raster.bands) == ("all",):  # the caller's object stays as it was
        data = replace(data, raster=replace(data.raster, bands=tuple(range(1, int(bands or 3) + 1))))
    train_data, held = data.load(clip, settings.languages)
    task = RemoteTrainTask(clip, train_data, settings, held, seed=cfg.seed)
    # how chips were read (multispectral runs) and their side: `index --model RUN` reads tiles alike
    clip.config["remote_input"] = {**(data.raster.to_dict() if data.raster is not None else {}),
                                   "tile_size": _chip_size(data.source)}
    clip, result, main = fit_and_save_clip(task, cfg, MultilingualPairs(train_data), clip, options)
    held_out = {k[len("eval/"):]: v for k, v in result.metrics.items() if k.startswith("eval/")}
    return RemoteTrainResult(out, clip, result, held_out, main)


def training_data(run: RemoteRun) -> TrainingData:
    """Where ``run`` reads its material, and how it reads rasters (any raster flag given)."""
    raster = None
    if run.bands is not None or run.scale is not None or run.s2_offset or run.nodata is not None:
        raster = RasterInput(run.bands, run.scale, S2_L2A_OFFSET_DN if run.s2_offset else 0.0, run.stretch,
                             run.nodata)
    assert run.data is not None  # RemoteRun refuses a run without data
    return TrainingData(Path(run.data), split=run.split, eval_split=run.eval_split,
                        translations=Path(run.translations) if run.translations else None, raster=raster)


def train_remote_run(run: RemoteRun, output_dir: str | os.PathLike[str], resume: bool = False,
                     overwrite: bool = False, progress: bool = True) -> RemoteTrainResult:
    """``clipsuite-remote train``: ``run`` (checked, torch-free) trained into ``output_dir``, stored with
    the run so ``--resume`` continues it as it was started."""
    return train_remote(training_data(run), output_dir, run.model, pretrained=run.pretrained,
                        settings=run.settings(), band_rule=run.band_rule, overwrite=overwrite,
                        options=run.to_options(), resume=resume, progress=progress, **run.train_options())
