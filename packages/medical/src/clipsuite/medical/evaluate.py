"""The field's metrics: VQA open / closed / overall accuracy (as MEVF, QCR and PubMedCLIP report:
exact match of the predicted answer, split by the ground-truth answer type). Few-shot accuracy and the
base-to-novel harmonic mean are the core's (``clipsuite.core.adapt.results``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader

from clipsuite.medical.data import VQASample

if TYPE_CHECKING:
    from clipsuite.medical.train_vqa import VQAModel  # which imports this module


def vqa_accuracy(predicted: Sequence[int], targets: Sequence[int], is_closed: Sequence[bool]) -> dict[str, float]:
    """Percentages. A target of -1 (answer never seen in training) always counts as wrong."""
    pred = torch.as_tensor(list(predicted))
    gold = torch.as_tensor(list(targets))
    closed = torch.as_tensor(list(is_closed), dtype=torch.bool)
    hit = (pred == gold) & (gold >= 0)
    result = {"overall": 100.0 * hit.float().mean().item() if len(hit) else 0.0}
    for name, rows in (("closed", closed), ("open", ~closed)):
        result[name] = 100.0 * hit[rows].float().mean().item() if rows.any() else float("nan")
    result["n_open"], result["n_closed"] = float((~closed).sum()), float(closed.sum())
    return result


def closed_chance(samples: Sequence[VQASample]) -> float:
    """Accuracy of always answering the most common closed answer (the floor to beat)."""
    closed = [s.answer for s in samples if s.answer_type == "CLOSED"]
    if not closed:
        return float("nan")
    return 100.0 * max(closed.count(a) for a in set(closed)) / len(closed)


@torch.no_grad()
def predict_vqa(model: VQAModel, dataset: torch.utils.data.Dataset, batch_size: int = 64,
                route_by_truth: bool = False) -> tuple[list[int], list[float], list[bool]]:
    """Answer indices, their probabilities and the routed type (QCR: predicted closed/open) per item."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    answers, scores, routed = [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(batch)
        route = batch["is_closed"].long() if route_by_truth else None
        logits = model.vqa.answer_scores(out, route)
        probs = logits.float().sigmoid()
        best = probs.max(dim=-1)
        answers += best.indices.tolist()
        scores += best.values.tolist()
        if "type_logits" in out:
            routed += (out["type_logits"].argmax(-1) == 1).tolist()
        else:
            routed += batch["is_closed"].tolist()
    model.train(was_training)
    return answers, scores, routed

