"""Remote-sensing protocols: retrieval on Karpathy caption JSON in both conventions and in any language,
zero-shot scene classification of class folders with RS templates, and a train/test leakage check.

Retrieval conventions (the papers mix them; every number here says which it is):

* ``all``: every caption counts, duplicates included; image->text is a hit when any of the image's
  captions is in the top K (RSICD/RSITMD as most papers report; the core's ``evaluate_retrieval``).
* ``dedup``: each image's identical captions kept once, and each prefixed with "a satellite image. ".
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipsuite.core.data import Pair, check_image_files, decode_image, read_karpathy_pairs
from clipsuite.core.errors import InputError
from clipsuite.core.images import list_images
from clipsuite.core.metrics import topk_accuracy
from clipsuite.core.models import ClipModel
from clipsuite.core.retrieval import evaluate_retrieval
from clipsuite.core.skipping import OnError, SkipLog, check_on_error, keep_readable, read_each
from clipsuite.core.tabular import iter_jsonl
from clipsuite.core.zeroshot import build_classifier
from clipsuite.remote.reading import check_rgb_model

CONVENTIONS = ("all", "dedup")


def _rgb(clip: ClipModel, what: str) -> None:
    """These protocols read RGB pictures: a multispectral model is refused in one line (not a conv error)."""
    check_rgb_model(clip.name, int(clip.model_cfg.get("vision_cfg", {}).get("in_chans", 3)), what)

DEDUP_PREFIX = "a satellite image. "
RS_TEMPLATES = ("a satellite image of {}.", "an aerial image of {}.", "a remote sensing image of {}.",
                "a satellite photo of {}.", "an aerial photograph of {}.")


def read_translations(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """Translations JSONL, one line per English caption: ``{"caption": ..., "translations": {lang: text}}``
    -> ``{caption: {lang: text}}``."""
    table: dict[str, dict[str, str]] = {}
    for number, row in iter_jsonl(path):
        caption, translations = row.get("caption"), row.get("translations")
        if not isinstance(caption, str) or not isinstance(translations, dict):
            raise InputError(f"{Path(path).name} line {number}: needs 'caption' (text) and 'translations' (object)")
        table[caption.strip()] = {str(k): str(v) for k, v in translations.items()}
    if not table:
        raise InputError(f"{path}: no translations")
    return table


def translate_pairs(pairs: Sequence[Pair], translations: Mapping[str, Mapping[str, str]], language: str,
                    ) -> list[Pair]:
    """The same pairs with captions in ``language`` ("en" keeps them); a missing translation is an error."""
    if language == "en":
        return list(pairs)
    out = []
    for pair in pairs:
        text = translations.get(pair.caption, {}).get(language)
        if text is None:
            raise InputError(f"{pair.where}: no '{language}' translation of caption '{pair.caption[:60]}'")
        out.append(Pair(pair.image, text, pair.where))
    return out


def dedup_pairs(pairs: Sequence[Pair], prefix: str = DEDUP_PREFIX) -> list[Pair]:
    """Each image's identical captions kept once (case and spacing ignored), each with ``prefix``."""
    seen: set[tuple[Any, str]] = set()
    out = []
    for pair in pairs:
        key = (pair.image, " ".join(pair.caption.lower().split()))
        if key not in seen:
            seen.add(key)
            out.append(Pair(pair.image, prefix + pair.caption, pair.where))
    return out


def evaluate_captions(clip: ClipModel, captions_json: str | os.PathLike[str], split: str | None = "test",
                      languages: Sequence[str] = ("en",), translations: str | os.PathLike[str] | None = None,
                      conventions: Sequence[str] = CONVENTIONS) -> list[dict[str, Any]]:
    """One row per (language, convention): R@1/5/10 both ways and mean recall (in %), labelled."""
    for convention in conventions:
        if convention not in CONVENTIONS:
            raise InputError(f"unknown convention '{convention}' (choose from {', '.join(CONVENTIONS)})")
    pairs = read_karpathy_pairs(captions_json, split=split)
    check_image_files(pairs)
    table = read_translations(translations) if translations is not None else {}
    if any(lang != "en" for lang in languages) and not table:
        raise InputError("languages other than 'en' need a translations JSONL")
    _rgb(clip, "retrieval evaluation")
    rows = []
    for language in languages:
        translated = translate_pairs(pairs, table, language)
        for convention in conventions:
            used = translated if convention == "all" else dedup_pairs(translated)
            metrics = evaluate_retrieval(clip, used)
            rows.append({"language": language, "convention": convention,
                         **{k: round(100 * v, 2) if k not in ("images", "captions") else int(v)
                            for k, v in metrics.items()}})
    return rows


# ---- zero-shot classification -----------------------------------------------------------------------
@dataclass
class ClassFolders:
    classes: list[str]
    images: list[Path]
    labels: list[int]


def read_class_folders(root: str | os.PathLike[str]) -> ClassFolders:
    """EuroSAT / RESISC45 layout: ``root/<Class>/*.jpg|png|tif``; class names from the folder names."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(f"{root}: no class folders")
    images, labels = [], []
    for label, folder in enumerate(folders):
        files = list_images(folder)
        images.extend(files)
        labels.extend([label] * len(files))
    return ClassFolders([f.name for f in folders], images, labels)


def class_prompt_name(folder_name: str) -> str:
    """``SeaLake`` -> ``sea lake``, ``solar_farm`` -> ``solar farm``: folder names as prompt words."""
    spaced = "".join(f" {c}" if c.isupper() and i and folder_name[i - 1].islower() else c
                     for i, c in enumerate(folder_name))
    return " ".join(spaced.replace("_", " ").replace("-", " ").lower().split())


def _all_fill(path: Path, nodata: float) -> bool:
    """Every pixel of the picture equals ``nodata`` in every channel: a chip cut from a scene's collar."""
    return bool((np.asarray(decode_image(path)) == nodata).all())


def zero_shot_classify(clip: ClipModel, root: str | os.PathLike[str], templates: Sequence[str] = RS_TEMPLATES,
                       batch_size: int = 64, on_error: OnError = "skip", nodata: float | None = None,
                       ) -> dict[str, Any]:
    """Top-1/top-5 accuracy (in %) and per-image predictions over class folders. Unreadable images are
    left out and listed (``skipped``: path and reason) with ``on_error="skip"``, or stop the run. With
    ``nodata``, pictures that are that value in every pixel and channel (fill chips) are left out of the
    accuracy and listed under ``fill``: they hold nothing to classify."""
    _rgb(clip, "zero-shot classification")
    data = read_class_folders(root)
    log = SkipLog(check_on_error(on_error))
    label_of = dict(zip(data.images, data.labels))
    # decode once up front: a corrupt file is left out (or fails) before any model work
    kept = keep_readable(data.images, decode_image, log, "images")
    fill = [p for p in kept if _all_fill(p, nodata)] if nodata is not None else []
    kept = [p for p in kept if p not in set(fill)]
    if data.images and not kept:
        raise InputError(f"{root}: every readable image is fill (all pixels {nodata:g}); nothing to classify")
    data = ClassFolders(data.classes, kept, [label_of[p] for p in kept])
    classifier = build_classifier(clip, [class_prompt_name(c) for c in data.classes], list(templates))
    features = clip.encode_images(data.images, batch_size=batch_size)
    logits = features @ classifier
    accuracy = topk_accuracy(logits, torch.tensor(data.labels), topk=(1, min(5, len(data.classes))))
    predicted = logits.argmax(dim=1).tolist()
    return {"classes": data.classes, "top1": round(100 * accuracy[1], 2),
            f"top{min(5, len(data.classes))}": round(100 * accuracy[min(5, len(data.classes))], 2),
            "images": len(data.images),
            "predictions": [{"image": str(p), "label": data.classes[t], "predicted": data.classes[q]}
                            for p, t, q in zip(data.images, data.labels, predicted)],
            "skipped": [item.as_dict() for item in log.skipped], "fill": [str(p) for p in fill]}


# ---- leakage ----------------------------------------------------------------------------------------
def content_hash(path: Path) -> str:
    """SHA-256 of the decoded RGB pixels (and size): the same picture re-saved under another name or
    format (PNG <-> lossless TIFF) hashes alike."""
    image = decode_image(path)
    digest = hashlib.sha256(f"{image.width}x{image.height}".encode())
    digest.update(np.asarray(image, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def find_leakage(train: Sequence[Path], test: Sequence[Path], clip: ClipModel | None = None,
                 threshold: float = 0.98, batch_size: int = 64, log: SkipLog | None = None) -> list[dict[str, Any]]:
    """Test images that also sit in the training set: identical pixels (``exact``) or, with a model,
    an embedding cosine of at least ``threshold`` to a training image (``near-duplicate``).

    Unreadable images fail the check, or with ``log`` (a ``SkipLog``) follow its policy: skipped ones
    are left out of both checks and listed in ``log``."""
    if not train or not test:
        raise InputError("leakage check needs training and test images")
    if clip is not None:
        _rgb(clip, "the leakage check")
    log = log if log is not None else SkipLog("fail")  # (an empty SkipLog is falsy)
    train_kept, train_hashes = read_each(list(train), content_hash, log, "training images")
    test_kept, test_hashes = read_each(list(test), content_hash, log, "test images")
    train = train_kept
    by_hash: dict[str, Path] = {}
    for path, digest in zip(train_kept, train_hashes):
        by_hash.setdefault(digest, path)
    found = []
    exact = set()
    test = test_kept
    for path, digest in zip(test_kept, test_hashes):
        match = by_hash.get(digest)
        if match is not None:
            exact.add(path)
            found.append({"test": str(path), "train": str(match), "kind": "exact", "similarity": 1.0})
    if clip is not None:
        train_features = clip.encode_images(list(train), batch_size=batch_size)
        rest = [p for p in test if p not in exact]
        if rest:
            similarity = clip.encode_images(rest, batch_size=batch_size) @ train_features.T
            best, where = similarity.max(dim=1)
            for path, score, index in zip(rest, best.tolist(), where.tolist()):
                if score >= threshold:
                    found.append({"test": str(path), "train": str(train[index]), "kind": "near-duplicate",
                                  "similarity": round(float(score), 4)})
    return found
