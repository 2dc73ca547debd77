"""From image files to scores and maps: method construction, reference fitting, batched inference.

Methods are found by name in the ``clipsuite.anomaly_methods`` registry; what a method needs (reference
images, a weights file) is read from the method class, so nothing here names a method. This is what the
CLI and the demo call; a library user can too::

    detector = Detector.create(load_model("tiny"), "patch_memory")
    detector.fit_references(list_images("normal/"))
    result, sizes = detector.predict_paths(list_images("test/"))

Images of any size are squash-resized to the model's input (references too: a reference of another
size than the queries is resized like them). ``score`` and ``score_category`` take ``on_error``:
``skip`` leaves out an unreadable image and says which (``Scored.skipped``), ``fail`` stops at it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from clipsuite.anomaly.data import Category, preprocess
from clipsuite.anomaly.methods.base import AnomalyMethod, AnomalyResult, MethodSetup, method_class
from clipsuite.core.errors import InputError
from clipsuite.core.images import load_image
from clipsuite.core.models import ClipModel
from clipsuite.core.skipping import OnError, SkipLog, Skipped


def build_method(clip: ClipModel, name: str, class_name: str = "object", weights: str | Path | None = None,
                 smoothing_sigma: float | None = None) -> AnomalyMethod:
    """The installed method ``name``; trained methods read their learned parts from ``weights``."""
    cls = method_class(name)
    if smoothing_sigma is not None and not smoothing_sigma >= 0:  # a negative one smoothed nothing, in silence
        raise InputError(f"smoothing sigma {smoothing_sigma}: give 0 (no smoothing) or more")
    if weights is not None and not cls.trained:
        raise InputError(f"method '{name}' is not trained: it takes no --weights file")
    return cls.build(clip, MethodSetup(class_name, Path(weights) if weights is not None else None, smoothing_sigma))


@dataclass
class Scored:
    """Scores and maps of the inputs that could be read, in input order, and what was left out."""

    result: AnomalyResult
    sizes: list[tuple[int, int]]          # original (height, width) of each scored image
    kept: list[int]                       # positions in the input list of the scored images
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class Detector:
    clip: ClipModel
    method: AnomalyMethod
    batch_size: int = 8
    fitted: bool = False  # normal references were given (fit_references)

    @classmethod
    def create(cls, clip: ClipModel, method: str, class_name: str = "object", weights: str | Path | None = None,
               smoothing_sigma: float | None = None, batch_size: int = 8) -> Detector:
        return cls(clip, build_method(clip, method, class_name, weights, smoothing_sigma), batch_size)

    @property
    def needs_references(self) -> bool:
        return self.method.references == "required"

    def _pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        cfg = self.clip.preprocess_cfg
        return torch.stack([preprocess(image, self.clip.image_size, cfg.mean, cfg.std) for image in images])

    def fit_references(self, paths: Sequence[Path], on_error: OnError = "fail",
                       limit: int | None = None) -> list[Skipped]:
        """Normal reference images, resized like the queries; the first ``limit`` readable ones when
        given. Returns the unreadable ones left out (``on_error="skip"``)."""
        if not paths:
            raise InputError("no reference images given")
        if limit is not None and limit < 1:
            raise InputError(f"reference limit {limit}: give at least 1 (or None for all)")
        if self.method.references == "unused":
            raise InputError(f"method '{self.method.name}' does not use reference images")
        log = SkipLog(on_error)
        images: list[Image.Image] = []
        for path in paths:
            if limit is not None and len(images) == limit:
                break
            image = log.attempt(path, lambda: load_image(path))  # noqa: B023 - called at once
            if image is not None:
                images.append(image)
        if not images:
            raise InputError(f"none of the {len(paths)} reference images could be read "
                             f"(first: {log.skipped[0].reason})")
        self.method.fit(self._pixels(images))  # type: ignore[attr-defined]  # references != "unused" promises fit()
        self.fitted = True
        return log.skipped

    def score(self, paths: Sequence[Path], on_error: OnError = "skip",
              on_batch: Callable[[int], None] | None = None) -> Scored:
        """Scores ``[N]`` and maps ``[N, S, S]`` at the model's input size of the readable ``paths``."""
        if self.needs_references and not self.fitted:
            raise InputError(f"method '{self.method.name}' needs normal reference images (--reference DIR)")
        log = SkipLog(on_error)
        results: list[AnomalyResult] = []
        sizes: list[tuple[int, int]] = []
        kept: list[int] = []
        for start in range(0, len(paths), self.batch_size):
            batch: list[Image.Image] = []
            for position in range(start, min(start + self.batch_size, len(paths))):
                image = log.attempt(paths[position], lambda: load_image(paths[position]))  # noqa: B023
                if image is not None:
                    batch.append(image)
                    kept.append(position)
            if batch:
                results.append(self.method.predict(self._pixels(batch)).cpu())
                sizes.extend((image.height, image.width) for image in batch)
            if on_batch:
                on_batch(min(self.batch_size, len(paths) - start))
        if not results:
            raise InputError(f"none of the {len(paths)} images could be read"
                             + (f" (first: {log.skipped[0].reason})" if log.skipped else ""))
        return Scored(AnomalyResult.cat(results), sizes, kept, log.skipped)

    def predict_paths(self, paths: Sequence[Path], on_batch: Callable[[int], None] | None = None,
                      ) -> tuple[AnomalyResult, list[tuple[int, int]]]:
        """``score`` that stops at an unreadable image: results for every path, plus original sizes."""
        scored = self.score(paths, "fail", on_batch)
        return scored.result, scored.sizes

    def score_category(self, category: Category, shots: int = 0, seed: int = 0,
                       on_batch: Callable[[int], None] | None = None, on_error: OnError = "fail") -> Scored:
        """Evaluate protocol for one category: set the class name, draw K seeded references, predict.
        Unreadable references and test images are left out under ``on_error="skip"`` (all listed)."""
        if hasattr(self.method, "set_class"):
            self.method.set_class(category.name)
        if shots < 0:
            raise InputError(f"shots {shots}: give 0 (zero-shot) or more reference images")
        trained: frozenset[str] = getattr(self.method, "trained_images", frozenset())
        seen = [s.image for s in category.test if trained and str(s.image.resolve()) in trained]
        if seen:  # the papers train on one dataset and evaluate on another: these would score training data
            raise InputError(f"{category.name}: {len(seen)} of its {len(category.test)} test images were used to "
                             f"train these {self.method.name} weights (e.g. {seen[0]}); evaluate on other data")
        skipped: list[Skipped] = []
        if shots or self.needs_references:
            k = shots or 1
            if len(category.train) < k:
                raise InputError(f"{category.name}: {k} reference shots asked for but only "
                                 f"{len(category.train)} normal training images")
            references = random.Random(seed).sample([s.image for s in category.train], k)
            skipped = self.fit_references(references, on_error)
        scored = self.score([s.image for s in category.test], on_error, on_batch)
        scored.skipped[:0] = skipped
        return scored

    def run_category(self, category: Category, shots: int = 0, seed: int = 0,
                     on_batch: Callable[[int], None] | None = None) -> tuple[AnomalyResult, list[tuple[int, int]]]:
        """``score_category`` that stops at an unreadable image: (results over ``category.test``, sizes)."""
        scored = self.score_category(category, shots, seed, on_batch)
        return scored.result, scored.sizes
