"""``AdaptData``: everything a method needs from one few-shot draw, computed once and shared.

Features of the train/val/test images are encoded once (plain preprocessing); augmented training views
and preprocessed pixels (for MaPLe, which runs prompts inside the image tower) are made on first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

import torch

from clipsuite.core.adapt.feature_cache import CachedFeatures, cached_features
from clipsuite.core.adapt.fewshot_data import Item, Split
from clipsuite.core.images import load_image
from clipsuite.core.models import ClipModel
from clipsuite.core.zeroshot import build_classifier

T = TypeVar("T")

DEFAULT_TEMPLATE = "a photo of a {}."


@dataclass
class AdaptData:
    clip: ClipModel
    split: Split  # already reduced to K shots
    shots: int
    seed: int
    views: int = 10  # augmented views of the training images for cache-based methods
    cache_dir: str | os.PathLike[str] | None = None
    template: str = DEFAULT_TEMPLATE
    _cache: dict[str, object] = field(default_factory=dict, repr=False)

    @property
    def class_names(self) -> list[str]:
        return self.split.class_names

    @property
    def n_classes(self) -> int:
        return len(self.split.class_names)

    @property
    def scale(self) -> float:
        return self.clip.logit_scale()

    def _memo(self, key: str, make: Callable[[], T]) -> T:
        if key not in self._cache:
            self._cache[key] = make()
        return cast(T, self._cache[key])  # the key fixes the kind of value stored under it

    def features(self, part: str) -> CachedFeatures:
        """Plain features of ``train``/``val``/``test`` (``[1, N, D]``)."""
        items = self.split.part(part)
        return self._memo(f"features:{part}", lambda: cached_features(
            self.clip, items, 0, self.seed, self.cache_dir))

    def train_views(self) -> CachedFeatures:
        """``views`` augmented passes over the training images (plain features when views is 0)."""
        if self.views <= 0:
            return self.features("train")
        return self._memo("train_views", lambda: cached_features(
            self.clip, self.split.train, self.views, self.seed, self.cache_dir))

    def zero_shot(self) -> torch.Tensor:
        """Hand-crafted prompt prototypes ``[C, D]``."""
        return self._memo("zero_shot", lambda: build_classifier(
            self.clip, self.class_names, [self.template]).T.contiguous())

    def pixels(self, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Preprocessed pixels ``[N, 3, H, W]`` and labels (decoded once)."""
        items = self.split.part(part)
        return self._memo(f"pixels:{part}", lambda: _pixels(self.clip, items))


def _pixels(clip: ClipModel, items: list[Item]) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = torch.stack([clip.preprocess(load_image(i.path)) for i in items])
    return pixels, torch.tensor([i.label for i in items], dtype=torch.long)
