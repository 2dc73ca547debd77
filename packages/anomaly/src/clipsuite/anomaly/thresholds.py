"""Decision thresholds: chosen on validation data (F1-max point) or given by the user."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from clipsuite.core import metrics
from clipsuite.core.errors import InputError


def threshold_from_validation(labels: Sequence[int], scores: Sequence[float] | torch.Tensor) -> float:
    """The score threshold at the F1-max point of labelled validation data (anomalous if >= t)."""
    labels = list(labels)
    if not 0 < sum(labels) < len(labels):
        raise InputError("threshold: validation data needs both normal and anomalous images")
    return metrics.f1_max_threshold(labels, scores)[1]
