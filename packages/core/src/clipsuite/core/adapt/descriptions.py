"""Classifiers from LLM description files (no training).

CuPL: ``{"class": ["sentence", ...]}``; a class's prototype is the mean of its normalised sentence
embeddings. Descriptor classification (Menon & Vondrick): prompts "{class}, which has {descriptor}",
a class scores the mean of its per-descriptor similarities.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from clipsuite.core.adapt.heads import DescriptorHead, LinearHead
from clipsuite.core.models import ClipModel
from clipsuite.core.prompts import load_descriptions
from clipsuite.core.zeroshot import build_classifier, build_descriptor_classifier

Sentences = str | os.PathLike[str] | Mapping[str, Sequence[str]]  # a JSON file, or already read


def _read(source: Sentences, class_names: Sequence[str]) -> Mapping[str, Sequence[str]]:
    return source if isinstance(source, Mapping) else load_descriptions(source, class_names)


def cupl_head(clip: ClipModel, class_names: Sequence[str], source: Sentences, scale: float) -> LinearHead:
    descriptions = _read(source, class_names)
    return LinearHead(build_classifier(clip, class_names, descriptions=descriptions).T, None, scale)


def descriptor_head(clip: ClipModel, class_names: Sequence[str], source: Sentences, scale: float) -> DescriptorHead:
    descriptors = _read(source, class_names)
    classifier = build_descriptor_classifier(clip, class_names, descriptors)
    return DescriptorHead(classifier.embeddings, classifier.owner, classifier.n_classes, scale)
