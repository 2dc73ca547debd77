"""KgCoOp: CoOp plus a knowledge-guided term keeping learned class embeddings near hand-crafted ones.

loss = CE + w * mean_c(1 - cos(t_c(ctx), t_c(hand-crafted))), w = 8.0 and n_ctx = 4 by default.
The classifier itself is CoOp's; only the training objective differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from clipsuite.core.adapt.coop import CoOpClassifier
from clipsuite.core.adapt.training import ClassificationTask
from clipsuite.core.models import ClipModel

DEFAULT_WEIGHT = 8.0


def kgcoop_task(clip: ClipModel, classifier: CoOpClassifier, class_names: Sequence[str],
                template: str = "a photo of a {}.", weight: float = DEFAULT_WEIGHT) -> ClassificationTask:
    """The CoOp task with KgCoOp's consistency term against ``template`` prompts."""
    with torch.no_grad():
        hand = clip.encode_texts([template.replace("{}", name) for name in class_names]).to(clip.device)

    def consistency() -> dict[str, torch.Tensor]:
        learned = classifier.text_features()
        score = torch.nn.functional.cosine_similarity(learned, hand.to(learned.dtype), dim=-1)
        return {"kg": weight * (1.0 - score.mean())}

    return ClassificationTask(clip, classifier, extra_loss=consistency)
