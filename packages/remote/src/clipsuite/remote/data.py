"""Training material for remote-sensing CLIP fine-tuning: images as model-ready tensors, their captions,
and every caption's translations.

Sources: any image-text file the core reads (Karpathy JSON as RSICD/RSITMD/UCM/Sydney ship it, CSV,
JSONL, webdataset shards) with an optional translations JSONL (caption -> language -> text); or
EuroSAT-style class folders (RGB or multispectral GeoTIFF chips), whose captions are the class names
in a remote-sensing template. Images are decoded once, up front: RGB files through the model's own
preprocessing, multispectral rasters through ``rasters.read_image`` (band selection, reflectance
scaling, per-chip percentile stretch) and the model's input normalisation, so they match what
``clipsuite-remote index`` feeds the same model.

``MultilingualPairs`` has one item per (pair, language): an epoch shows every caption in every
language once, and the Trainer's shuffled order mixes the languages within each batch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from clipsuite.core.data import Pair, decode_image, read_pairs
from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel
from clipsuite.core.towers import vision_tower
from clipsuite.remote.evaluate import RS_TEMPLATES, class_prompt_name, read_class_folders, read_translations
from clipsuite.remote.fill import Fill
from clipsuite.remote.rasters import BandRef, Scaling, Stretch, check_scale, read_image
from clipsuite.remote.scenes import model_input


@dataclass(frozen=True)
class RasterInput:
    """How multispectral (or any raster) images become model input: bands, DN scaling, stretch. The
    same settings as ``clipsuite-remote index`` takes, so a trained model sees tiles as it saw chips."""

    bands: tuple[BandRef, ...] | None = None
    scale: float | None = None
    offset: float = 0.0
    stretch: tuple[float, float] | None = (2.0, 98.0)
    nodata: float | None = None  # overrides the chips' own nodata (fill.Fill); stretch and masks ignore it

    def __post_init__(self) -> None:
        check_scale(self.scale)
        Fill(self.nodata)

    def to_dict(self) -> dict[str, Any]:
        return {"bands": list(self.bands) if self.bands is not None else None, "scale": self.scale,
                "offset": self.offset, "stretch": list(self.stretch) if self.stretch is not None else None,
                "nodata": self.nodata}


@dataclass
class CaptionedImages:
    """Images ``pixels [N, C, S, S]`` (normalised model input), distinct source ``captions`` with their
    text per language (``texts[lang][k]`` translates ``captions[k]``), and which image has which
    caption (``pairs``: (image, caption) positions)."""

    pixels: torch.Tensor
    names: list[str]
    captions: list[str]
    texts: dict[str, list[str]]
    pairs: list[tuple[int, int]]
    languages: list[str] = field(default_factory=lambda: ["en"])

    def owns(self) -> torch.Tensor:
        """``[N_images, N_captions]`` bool: image ``i`` is described by caption ``k``."""
        table = torch.zeros(len(self.names), len(self.captions), dtype=torch.bool)
        for image, caption in self.pairs:
            table[image, caption] = True
        return table


def load_pixels(paths: Sequence[Path], clip: ClipModel, raster: RasterInput | None = None) -> torch.Tensor:
    """Model-ready ``[N, C, S, S]`` for ``paths``. Multispectral (``raster`` given, or a model that takes
    other than 3 bands): read with the bands, scaling and stretch, resized and normalised like indexed
    tiles; the band count must be the model's. Otherwise decoded to RGB and preprocessed by the model."""
    in_chans = vision_tower(clip).in_chans
    out = []
    for path in paths:
        if raster is not None or in_chans != 3:
            settings = raster or RasterInput()
            stretch = Stretch(*settings.stretch) if settings.stretch is not None else None
            values, _ = read_image(path, settings.bands, Scaling(settings.scale, settings.offset), stretch,
                                   Fill(settings.nodata))
            if values.shape[0] != in_chans:
                raise InputError(f"{path}: {values.shape[0]} bands selected but the model takes {in_chans}; "
                                 f"choose {in_chans} bands (or adapt the model to {values.shape[0]})")
            out.append(model_input(torch.from_numpy(values).clamp(0, 1)[None], clip)[0])
        else:
            out.append(clip.preprocess(decode_image(path)))
    return torch.stack(out)


def captioned_images(pairs: Sequence[Pair], clip: ClipModel, languages: Sequence[str] = ("en",),
                     translations: Mapping[str, Mapping[str, str]] | None = None,
                     raster: RasterInput | None = None) -> CaptionedImages:
    """Group ``pairs`` by image and caption, look every caption up in every language (English is the
    source), and load the images. A caption without a translation into a requested language is an
    error naming it: a silently English-only language would inflate its scores."""
    if not pairs:
        raise InputError("no image-caption pairs")
    languages = list(dict.fromkeys(languages))
    if not languages:
        raise InputError("give at least one language")
    table = translations or {}
    image_at: dict[str, int] = {}
    caption_at: dict[str, int] = {}
    paths: list[Path] = []
    links: dict[tuple[int, int], None] = {}
    for pair in pairs:
        if not isinstance(pair.image, Path):
            raise InputError(f"{pair.where}: training reads image files (got an in-memory image)")
        image = image_at.setdefault(str(pair.image), len(image_at))
        if image == len(paths):
            paths.append(pair.image)
        caption_id = caption_at.setdefault(pair.caption, len(caption_at))
        links[(image, caption_id)] = None
    captions = list(caption_at)
    texts: dict[str, list[str]] = {}
    for language in languages:
        if language == "en":
            texts[language] = captions
            continue
        if not table:
            raise InputError(f"language '{language}' needs a translations JSONL (caption -> language -> text)")
        column = []
        for caption in captions:
            text = table.get(caption, {}).get(language)
            if not text or not text.strip():
                raise InputError(f"no '{language}' translation of caption '{caption[:60]}' in the translations")
            column.append(text.strip())
        texts[language] = column
    return CaptionedImages(load_pixels(paths, clip, raster), [str(p) for p in paths], captions, texts,
                           list(links), languages)


def read_captioned(source: str | os.PathLike[str], clip: ClipModel, split: str | None = None,
                   languages: Sequence[str] = ("en",), translations: str | os.PathLike[str] | None = None,
                   raster: RasterInput | None = None) -> CaptionedImages:
    """An image-text file (Karpathy JSON with ``split``, CSV, JSONL, shards) and optional translations."""
    table = read_translations(translations) if translations is not None else None
    return captioned_images(read_pairs(source, split=split), clip, languages, table, raster)


def class_folder_pairs(root: str | os.PathLike[str], template: str = RS_TEMPLATES[0]) -> list[Pair]:
    """EuroSAT / RESISC45 class folders as image-caption pairs: the caption is ``template`` with the
    class name (``AnnualCrop`` -> "a satellite image of annual crop.")."""
    folders = read_class_folders(root)
    if not folders.images:
        raise InputError(f"{root}: the class folders hold no images")
    return [Pair(path, template.format(class_prompt_name(folders.classes[label])), f"{root}/{folders.classes[label]}")
            for path, label in zip(folders.images, folders.labels)]


class MultilingualPairs(Dataset):
    """Item ``i`` is pair ``i // L`` in language ``i % L`` (``L`` languages):
    ``{"image": [C, S, S], "image_id", "caption_id", "text"}``."""

    def __init__(self, data: CaptionedImages) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data.pairs) * len(self.data.languages)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        pair, lang = divmod(index, len(self.data.languages))
        image, caption = self.data.pairs[pair]
        language = self.data.languages[lang]
        return {"image": self.data.pixels[image], "image_id": image, "caption_id": caption,
                "text": self.data.texts[language][caption]}
