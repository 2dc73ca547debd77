"""Zero-shot classification of medical images and volumes with a CLIP model (BiomedCLIP, PubMedCLIP...).

A path may be an image, a folder of images, a NIfTI file (a 4D one: each volume, or the one
``volume_index`` names), a DICOM series folder or one file of a series, or a folder of NIfTI files.
Volumes are cut into slices (``VolumeOptions``), every slice is classified, and the volume's
prediction aggregates the slice probabilities (mean or max). In a folder of images or NIfTI files an
unreadable file is skipped (``on_error="skip"``, listed in ``Classified.skipped``) or stops the run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from clipsuite.core.errors import InputError
from clipsuite.core.images import is_image_file, list_images, load_image
from clipsuite.core.models import ClipModel
from clipsuite.core.skipping import OnError, SkipLog, Skipped, keep_readable
from clipsuite.core.zeroshot import build_classifier
from clipsuite.medical.volumes import (
    DEFAULT_RGB_WINDOWS,
    ClipInputs,
    Volume,
    aggregate,
    is_nifti,
    is_volume_path,
    load_volumes,
    volume_to_rgb,
)

MEDICAL_TEMPLATES = ["a medical image of {}.", "a radiology image showing {}.", "a ct scan showing {}.",
                     "an image of {}."]


@dataclass
class VolumeOptions:
    axis: str = "axial"
    slices: Sequence[int] | None = None   # explicit indices; otherwise ``n`` evenly spaced
    n: int | None = 16
    mode: str = "slice"                   # slice | 2.5d | windows
    window: str = "soft-tissue"
    windows: Sequence[str] = DEFAULT_RGB_WINDOWS
    aggregate: str = "mean"               # mean | max


@dataclass
class Prediction:
    source: str
    label: str
    scores: dict[str, float]
    slices: list[dict[str, object]] = field(default_factory=list)  # per-slice results for volumes


def make_classifier(clip: ClipModel, classes: Sequence[str], templates: str | Sequence[str] | None = None,
                    descriptions: Mapping[str, Sequence[str]] | None = None) -> torch.Tensor:
    return build_classifier(clip, classes, templates or MEDICAL_TEMPLATES, descriptions)


def volume_pixels(clip: ClipModel, volume: Volume, options: VolumeOptions) -> tuple[torch.Tensor, list[int]]:
    # VolumeOptions holds the CLI's strings (axis, mode); volume_to_rgb refuses unknown ones
    rgb, indices = volume_to_rgb(volume, options.axis, options.slices, options.n, options.mode,  # type: ignore[arg-type]
                                 options.window, options.windows)
    return ClipInputs.for_model(clip)(rgb), indices


def classify_volume(clip: ClipModel, volume: Volume, classes: Sequence[str], classifier: torch.Tensor,
                    options: VolumeOptions | None = None, batch_size: int = 64) -> Prediction:
    options = options or VolumeOptions()
    pixels, indices = volume_pixels(clip, volume, options)
    features = clip.encode_images(pixels, batch_size=batch_size)
    probs = (clip.logit_scale() * features @ classifier).softmax(dim=-1)
    overall = aggregate(probs, options.aggregate)  # type: ignore[arg-type]  # the CLI's string
    slices = [{"slice": k, "label": classes[int(p.argmax())], "scores": dict(zip(classes, p.tolist()))}
              for k, p in zip(indices, probs)]
    return Prediction(volume.source, classes[int(overall.argmax())], dict(zip(classes, overall.tolist())), slices)


def classify_images(clip: ClipModel, paths: Sequence[Path], classes: Sequence[str], classifier: torch.Tensor,
                    batch_size: int = 64) -> list[Prediction]:
    features = clip.encode_images(list(paths), batch_size=batch_size)
    probs = (clip.logit_scale() * features @ classifier).softmax(dim=-1)
    return [Prediction(str(p), classes[int(row.argmax())], dict(zip(classes, row.tolist())))
            for p, row in zip(paths, probs)]


@dataclass
class Classified:
    """The predictions for what could be read at a path, and the files left out as unreadable."""

    predictions: list[Prediction]
    skipped: list[Skipped] = field(default_factory=list)


def classify_source(clip: ClipModel, path: str | os.PathLike[str], classes: Sequence[str],
                    options: VolumeOptions | None = None, templates: str | Sequence[str] | None = None,
                    descriptions: Mapping[str, Sequence[str]] | None = None, on_error: OnError = "skip",
                    volume_index: int | None = None) -> Classified:
    """One prediction per image or per volume found at ``path``; ``on_error`` applies to the files of a
    folder (a file named on its own, or a DICOM series folder, must be readable; a named DICOM file's
    neighbours that do not decode are left out of its series and listed in ``skipped``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file or folder not found")
    log = SkipLog(on_error)
    classifier = make_classifier(clip, classes, templates, descriptions)
    if is_volume_path(path):
        volumes = load_volumes(path, volume_index)
        # a named DICOM file's neighbours that were left out (undecodable, repeats) are listed, not fatal
        return Classified([classify_volume(clip, v, classes, classifier, options) for v in volumes],
                          [s for v in volumes for s in v.left_out])
    files = sorted(p for p in path.iterdir() if p.is_file() and is_nifti(p)) if path.is_dir() else []
    if not files:
        if volume_index is not None:  # it picks a volume of a 4D NIfTI file; images have none
            raise InputError(f"{path}: holds images, not NIfTI volumes; volume_index (--volume-index) does not apply")
        images = keep_readable(list_images(path), load_image, log, "images")
        return Classified(classify_images(clip, images, classes, classifier), log.skipped)
    image = next((p for p in sorted(path.glob("**/*")) if p.is_file() and is_image_file(p)), None)
    if image is not None:  # only the volumes would be classified: the images were left out unlisted
        raise InputError(f"{path}: holds both NIfTI volumes and images (e.g. {image}); classify each kind from "
                         "its own folder")
    predictions = []
    for file in files:  # one file's volumes in memory at a time
        read = log.attempt(file, lambda: load_volumes(file, volume_index))  # noqa: B023 - called at once
        predictions += [classify_volume(clip, v, classes, classifier, options) for v in read or []]
    if not predictions:
        raise InputError(f"none of the {len(files)} volumes in {path} could be read (first: {log.skipped[0].reason})")
    return Classified(predictions, log.skipped)


def classify_path(clip: ClipModel, path: str | os.PathLike[str], classes: Sequence[str],
                  options: VolumeOptions | None = None, templates: str | Sequence[str] | None = None,
                  descriptions: Mapping[str, Sequence[str]] | None = None) -> list[Prediction]:
    """``classify_source`` that stops at the first unreadable file: one prediction per image or volume."""
    return classify_source(clip, path, classes, options, templates, descriptions, on_error="fail").predictions
