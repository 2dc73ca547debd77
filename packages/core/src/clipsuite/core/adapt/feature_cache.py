"""Frozen-feature cache: encode images once, train on the features for every epoch.

With a frozen image encoder and no augmentation, each epoch would recompute the very same image
features; computing them once removes the image tower from the training loop. With augmentation,
``views`` augmented passes are encoded up front (Tip-Adapter and GDA average or keep them).
Caches can live on disk (safetensors), keyed by the model's weights and the image files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from clipsuite.core.adapt.fewshot_data import Item
from clipsuite.core.checkpoints import load_tensors, save_tensors
from clipsuite.core.images import load_image
from clipsuite.core.models import ClipModel


@dataclass
class CachedFeatures:
    """``features``: ``[V, N, D]`` (V views; V=1 without augmentation), normalised; ``labels``: ``[N]``."""

    features: torch.Tensor
    labels: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        """Mean over views, normalised again: ``[N, D]`` (Tip-Adapter's cache keys)."""
        return torch.nn.functional.normalize(self.features.mean(dim=0), dim=-1)

    @property
    def flat(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every view as its own sample: ``([V*N, D], [V*N])``."""
        views = self.features.shape[0]
        return self.features.reshape(-1, self.features.shape[-1]), self.labels.repeat(views)


class ImageDataset(Dataset):
    """Items as ``{"pixels", "label"}``, decoded and transformed on every access."""

    def __init__(self, items: Sequence[Item], transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.items = list(items)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.items[index]
        return {"pixels": self.transform(load_image(item.path)), "label": torch.tensor(item.label)}


class FeatureDataset(Dataset):
    """Cached features as ``{"features", "label"}`` (all views flattened)."""

    def __init__(self, cached: CachedFeatures) -> None:
        self.features, self.labels = cached.flat

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"features": self.features[index], "label": self.labels[index]}


def model_fingerprint(clip: ClipModel) -> str:
    """A short hash of the model's weights, so a cache never outlives the model that made it."""
    digest = hashlib.sha1(clip.name.encode())
    with torch.no_grad():
        for name, tensor in clip.model.state_dict().items():
            digest.update(name.encode())
            digest.update(f"{float(tensor.double().sum()):.6e}".encode())
    return digest.hexdigest()[:16]


def _cache_key(clip: ClipModel, items: Sequence[Item], views: int, seed: int) -> str:
    digest = hashlib.sha1(model_fingerprint(clip).encode())
    for item in items:
        stat = item.path.stat()
        digest.update(f"{item.path}|{item.label}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    digest.update(f"views={views}|seed={seed}".encode())
    return digest.hexdigest()[:20]


@torch.no_grad()
def encode_items(clip: ClipModel, items: Sequence[Item], views: int = 0, seed: int = 0,
                 batch_size: int = 64) -> CachedFeatures:
    """Encode items once (``views=0``: plain preprocessing) or ``views`` times with training augmentation."""
    labels = torch.tensor([i.label for i in items], dtype=torch.long)
    if views <= 0:
        features = clip.encode_images([i.path for i in items], batch_size=batch_size)[None]
        return CachedFeatures(features, labels)
    # torchvision's random transforms draw from torch's global CPU generator: seed it, then restore it
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        images = [load_image(i.path) for i in items]
        passes = []
        for _ in range(views):
            pixels = torch.stack([clip.preprocess_train(img) for img in images])
            passes.append(clip.encode_images(pixels, batch_size=batch_size))
    return CachedFeatures(torch.stack(passes), labels)


def cached_features(clip: ClipModel, items: Sequence[Item], views: int = 0, seed: int = 0,
                    cache_dir: str | os.PathLike[str] | None = None, batch_size: int = 64) -> CachedFeatures:
    """``encode_items`` with an optional on-disk cache in ``cache_dir``."""
    if cache_dir is None:
        return encode_items(clip, items, views, seed, batch_size)
    path = Path(cache_dir) / f"features-{_cache_key(clip, items, views, seed)}.safetensors"
    if path.is_file():
        tensors = load_tensors(path)
        return CachedFeatures(tensors["features"], tensors["labels"])
    cached = encode_items(clip, items, views, seed, batch_size)
    save_tensors(path, {"features": cached.features, "labels": cached.labels},
                 {"views": views, "seed": seed, "n": len(items)})
    return cached
