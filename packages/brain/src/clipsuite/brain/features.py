"""Stimulus embeddings: CLIP image embeddings of the stimuli, text embeddings of their captions (or
category names), computed with the core's ``ClipModel`` once and cached as safetensors.

The cache file is keyed by the model's weights fingerprint and by every stimulus's id, image file
(size, mtime) and caption, so it never outlives what made it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from clipsuite.brain.prep import Stimulus
from clipsuite.core.adapt.feature_cache import model_fingerprint
from clipsuite.core.checkpoints import load_tensors, save_tensors
from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel, ImageInput


@dataclass
class StimulusFeatures:
    ids: list[str]
    image: np.ndarray      # (n, d) L2-normalised
    text: np.ndarray       # (n, d) L2-normalised; captions, or "a photo of a {category}" when no caption

    def rows(self, ids: Sequence[str] | np.ndarray) -> np.ndarray:  # ids: a list or an array of str
        index = {sid: i for i, sid in enumerate(self.ids)}
        return np.asarray([index[s] for s in ids])


def stimulus_text(stimulus: Stimulus) -> str:
    if stimulus.caption:
        return stimulus.caption
    if stimulus.category:
        return f"a photo of a {stimulus.category}"
    raise InputError(f"stimulus '{stimulus.id}' has neither caption nor category for its text embedding")


def _key(clip: ClipModel, stimuli: Sequence[Stimulus]) -> str:
    digest = hashlib.sha1(model_fingerprint(clip).encode())
    for s in stimuli:
        stat = s.image.stat() if s.image is not None and s.image.is_file() else None
        digest.update(f"{s.id}|{s.image}|{stat.st_size if stat else -1}|{stat.st_mtime_ns if stat else -1}|"
                      f"{s.caption}|{s.category}".encode())
        if s.brick_row is not None:  # only then: image-file stimuli keep the keys of caches already written
            digest.update(f"|row {s.brick_row}".encode())
    return digest.hexdigest()[:20]


def encode_stimuli(clip: ClipModel, stimuli: Sequence[Stimulus], cache_dir: str | Path | None = None,
                   batch_size: int = 64) -> StimulusFeatures:
    """Image and text embeddings of ``stimuli`` (in their order), through the cache when given."""
    ids = [s.id for s in stimuli]
    path = Path(cache_dir) / f"stimuli-{_key(clip, stimuli)}.safetensors" if cache_dir is not None else None
    if path is not None and path.is_file():
        tensors = load_tensors(path)
        return StimulusFeatures(ids, tensors["image"].numpy(), tensors["text"].numpy())
    missing = [s for s in stimuli if s.image is None or not s.image.is_file()]
    if missing:
        raise InputError(f"stimulus '{missing[0].id}': image {missing[0].image or '(none given)'} not found"
                         f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}")
    image = _encode_pictures(clip, stimuli, batch_size)
    text = clip.encode_texts([stimulus_text(s) for s in stimuli])
    if path is not None:
        save_tensors(path, {"image": image, "text": text}, {"n": len(ids), "model": clip.name})
    return StimulusFeatures(ids, image.float().numpy(), text.float().numpy())


def _encode_pictures(clip: ClipModel, stimuli: Sequence[Stimulus], batch_size: int) -> torch.Tensor:
    """Image embeddings; pictures that are rows of an image brick are read a batch at a time straight from
    the HDF5 array (NSD's 73,000 images are never all in memory, nor written to files)."""
    if all(s.brick_row is None for s in stimuli):
        return clip.encode_images([str(s.image) for s in stimuli], batch_size=batch_size)
    from clipsuite.brain.nsd import open_brick, read_brick
    from clipsuite.brain.nsd_layout import BRICK_KEY

    chunks = []
    with contextlib.ExitStack() as stack:
        bricks: dict[Path, Any] = {}
        for start in range(0, len(stimuli), batch_size):
            part = stimuli[start:start + batch_size]
            pictures: list[ImageInput] = [str(s.image) for s in part]
            rows: dict[Path, list[int]] = {}
            for i, s in enumerate(part):
                if s.brick_row is not None and s.image is not None:
                    rows.setdefault(s.image, []).append(i)
            for path, positions in rows.items():
                if path not in bricks:
                    bricks[path] = stack.enter_context(open_brick(path))[BRICK_KEY]
                arrays = read_brick(bricks[path], [int(part[i].brick_row or 0) for i in positions])
                for i, array in zip(positions, arrays):
                    pictures[i] = Image.fromarray(array)
            chunks.append(clip.encode_images(pictures, batch_size=batch_size))
    return torch.cat(chunks)


def category_prototypes(features: StimulusFeatures, stimuli: dict[str, Stimulus], ids: Sequence[str],
                        source: str = "image") -> tuple[list[str], np.ndarray]:
    """One candidate embedding per category of ``ids``: the mean (renormalised) embedding of the
    category's stimuli in ``ids`` (``image``), or of their texts (``text``) -- GOD's category features."""
    cats = sorted({stimuli[s].category for s in ids})
    if "" in cats:
        raise InputError("category decoding needs a 'category' for every stimulus in the stimulus table")
    table = features.image if source == "image" else features.text
    rows = features.rows(ids)
    labels = np.asarray([stimuli[s].category for s in ids])
    protos = np.stack([table[rows[labels == c]].mean(0) for c in cats])
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    return cats, torch.as_tensor(protos).numpy()
