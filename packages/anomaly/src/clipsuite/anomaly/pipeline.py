"""From image files to scores and maps: method construction, reference fitting, batched inference.

Methods are found by name in the ``clipsuite.anomaly_methods`` registry; what a method needs (reference
images, a weights file) is read from the method class, so nothing here names a method. This is what the
CLI and the demo call; a library user can too::

    detector = Detector.create(load_model("tiny"), "patch_memory")
    detector.fit_references(list_images("normal/"))
    result, sizes = detector.predict_paths(list_images("test/"))
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from clipsuite.anomaly.data import Category, load_pixels
from clipsuite.anomaly.methods.base import AnomalyMethod, AnomalyResult, MethodSetup, method_class
from clipsuite.core.errors import InputError
from clipsuite.core.images import load_image
from clipsuite.core.models import ClipModel


def build_method(clip: ClipModel, name: str, class_name: str = "object", weights: str | Path | None = None,
                 smoothing_sigma: float | None = None) -> AnomalyMethod:
    """The installed method ``name``; trained methods read their learned parts from ``weights``."""
    cls = method_class(name)
    if weights is not None and not cls.trained:
        raise InputError(f"method '{name}' is not trained: it takes no --weights file")
    return cls.build(clip, MethodSetup(class_name, Path(weights) if weights is not None else None, smoothing_sigma))


@dataclass
class Detector:
    clip: ClipModel
    method: AnomalyMethod
    batch_size: int = 8
    reference_size: tuple[int, int] | None = None
    fitted: bool = False  # normal references were given (fit_references)

    @classmethod
    def create(cls, clip: ClipModel, method: str, class_name: str = "object", weights: str | Path | None = None,
               smoothing_sigma: float | None = None, batch_size: int = 8) -> Detector:
        return cls(clip, build_method(clip, method, class_name, weights, smoothing_sigma), batch_size)

    @property
    def needs_references(self) -> bool:
        return self.method.references == "required"

    def _pixels(self, paths: Sequence[Path]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        cfg = self.clip.preprocess_cfg
        return load_pixels(paths, self.clip.image_size, cfg.mean, cfg.std)

    def fit_references(self, paths: Sequence[Path]) -> None:
        """K normal images of one size (the size queries are then checked against)."""
        if not paths:
            raise InputError("no reference images given")
        if self.method.references == "unused":
            raise InputError(f"method '{self.method.name}' does not use reference images")
        sizes = {}
        for path in paths:
            image = load_image(path)
            sizes[path] = (image.height, image.width)
        first = sizes[paths[0]]
        for path, size in sizes.items():
            if size != first:
                raise InputError(f"{path}: reference image is {size[1]}x{size[0]}, "
                                 f"the others are {first[1]}x{first[0]}")
        pixels, _ = self._pixels(paths)
        self.method.fit(pixels)  # type: ignore[attr-defined]  # references != "unused" promises fit()
        self.reference_size = first
        self.fitted = True

    def check_query_size(self, path: Path, size: tuple[int, int]) -> None:
        if self.reference_size is not None and size != self.reference_size:
            raise InputError(f"{path}: image is {size[1]}x{size[0]} but the reference images are "
                             f"{self.reference_size[1]}x{self.reference_size[0]}")

    def predict_paths(self, paths: Sequence[Path], on_batch: Callable[[int], None] | None = None,
                      ) -> tuple[AnomalyResult, list[tuple[int, int]]]:
        """Scores ``[N]`` and maps ``[N, S, S]`` at the model's input size, plus original sizes."""
        if self.needs_references and not self.fitted:
            raise InputError(f"method '{self.method.name}' needs normal reference images (--reference DIR)")
        results, sizes = [], []
        for start in range(0, len(paths), self.batch_size):
            batch = list(paths[start:start + self.batch_size])
            pixels, batch_sizes = self._pixels(batch)
            for path, size in zip(batch, batch_sizes):
                self.check_query_size(path, size)
            results.append(self.method.predict(pixels).cpu())
            sizes.extend(batch_sizes)
            if on_batch:
                on_batch(len(batch))
        return AnomalyResult.cat(results), sizes

    def run_category(self, category: Category, shots: int = 0, seed: int = 0,
                     on_batch: Callable[[int], None] | None = None) -> tuple[AnomalyResult, list[tuple[int, int]]]:
        """Evaluate protocol for one category: set the class name, draw K seeded references, predict."""
        if hasattr(self.method, "set_class"):
            self.method.set_class(category.name)
        if shots or self.needs_references:
            k = shots or 1
            if len(category.train) < k:
                raise InputError(f"{category.name}: {k} reference shots asked for but only "
                                 f"{len(category.train)} normal training images")
            references = random.Random(seed).sample([s.image for s in category.train], k)
            self.fit_references(references)
            self.reference_size = None  # datasets mix sizes (VisA); evaluation resizes everything
        return self.predict_paths([s.image for s in category.test], on_batch)
