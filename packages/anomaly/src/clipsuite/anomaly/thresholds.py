"""Decision thresholds: chosen on validation data (F1-max point) or given by the user."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from clipsuite.anomaly.data import load_dataset
from clipsuite.anomaly.pipeline import Detector
from clipsuite.core import metrics
from clipsuite.core.errors import InputError
from clipsuite.core.skipping import OnError, Skipped


def threshold_from_validation(labels: Sequence[int], scores: Sequence[float] | torch.Tensor) -> float:
    """The score threshold at the F1-max point of labelled validation data (anomalous if >= t)."""
    labels = list(labels)
    if not 0 < sum(labels) < len(labels):
        raise InputError("threshold: validation data needs both normal and anomalous images")
    return metrics.f1_max_threshold(labels, scores)[1]


def validation_threshold(detector: Detector, folder: str | os.PathLike[str],
                         on_error: OnError = "skip") -> tuple[float, list[Skipped]]:
    """The F1-max threshold of ``detector`` on the labelled images under ``folder`` (good/ and defect
    folders, or any dataset layout ``load_dataset`` reads), and the unreadable ones it left out."""
    samples = [s for category in load_dataset(folder) for s in category.test]
    checked = detector.score([s.image for s in samples], on_error)
    return threshold_from_validation([samples[i].label for i in checked.kept], checked.result.scores), checked.skipped
