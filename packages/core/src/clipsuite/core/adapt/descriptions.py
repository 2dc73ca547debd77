"""Classifiers from LLM description files (no training).

CuPL: ``{"class": ["sentence", ...]}``; a class's prototype is the mean of its normalised sentence
embeddings. Descriptor classification (Menon & Vondrick): prompts "{class}, which has {descriptor}",
a class scores the mean of its per-descriptor similarities.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from clipsuite.core.adapt.heads import DescriptorHead, LinearHead
from clipsuite.core.models import ClipModel
from clipsuite.core.prompts import load_descriptions
from clipsuite.core.zeroshot import build_classifier, build_descriptor_classifier


def cupl_head(clip: ClipModel, class_names: Sequence[str], path: str | os.PathLike[str], scale: float) -> LinearHead:
    descriptions = load_descriptions(path, class_names)
    return LinearHead(build_classifier(clip, class_names, descriptions=descriptions).T, None, scale)


def descriptor_head(clip: ClipModel, class_names: Sequence[str], path: str | os.PathLike[str],
                    scale: float) -> DescriptorHead:
    descriptors = load_descriptions(path, class_names)
    classifier = build_descriptor_classifier(clip, class_names, descriptors)
    return DescriptorHead(classifier.embeddings, classifier.owner, classifier.n_classes, scale)
