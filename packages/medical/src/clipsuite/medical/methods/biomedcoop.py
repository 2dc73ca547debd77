"""BiomedCoOp (Koleilat et al., CVPR 2025): CoOp for biomedical CLIP models, guided by LLM prompts.

The classifier is the core's CoOp prompt learner (4 context vectors initialised from "a photo of a",
through BiomedCLIP's Hugging Face text tower with ``inputs_embeds``); only the context trains.
Training adds two terms built from LLM-written sentences per class (frozen embeddings ``[C, P, D]``):

- SCCM, semantic consistency: MSE between the learned class text features and the normalised mean
  of each class's LLM sentence embeddings (weight ``sccm_weight``, 1.0);
- KDSP, knowledge distillation with selective prompting: per batch, each LLM prompt index p gets a
  score s_p = mean over images of the max logit against prompt p's class embeddings; its robust
  z-score z_p = (s_p - median(s)) / MAD(s) is standardised again and prompts beyond ``tau`` (1.5) are
  pruned as outliers. The teacher's logits use the mean of the kept prompts; the loss is
  KL(teacher || student) summed and divided by the number of logits (weight ``kdsp_weight``, 1.0).
Paper defaults: SGD lr 0.0025, batch 4, fp32, 50 LLM prompts per class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from clipsuite.core.adapt.coop import CoOpClassifier, PromptConfig
from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel


@dataclass
class BiomedCoOpConfig:
    n_ctx: int = 4
    ctx_init: str = "a photo of a"
    n_prompts: int = 50        # LLM sentences used per class (fewer if the file has fewer)
    sccm_weight: float = 1.0
    kdsp_weight: float = 1.0
    tau: float = 1.5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prompt_config(cfg: BiomedCoOpConfig) -> PromptConfig:
    return PromptConfig(n_ctx=cfg.n_ctx, ctx_init=cfg.ctx_init or None, csc=False, class_token_position="end")


@torch.no_grad()
def llm_embeddings(clip: ClipModel, class_names: Sequence[str], descriptions: Mapping[str, Sequence[str]],
                   n_prompts: int = 50) -> torch.Tensor:
    """Normalised text features of the LLM sentences, ``[C, P, D]``; P = the smallest count over classes
    (capped at ``n_prompts``) so that prompt index p lines up across classes, as the method needs."""
    missing = [c for c in class_names if not descriptions.get(c)]
    if missing:
        raise InputError(f"no LLM sentences for class '{missing[0]}'")
    count = min(n_prompts, *(len(descriptions[c]) for c in class_names))
    from clipsuite.core.zeroshot import check_prompt_lengths

    rows = []
    for name in class_names:
        sentences = list(descriptions[name])[:count]
        check_prompt_lengths(clip, sentences)
        rows.append(clip.encode_texts(sentences))
    return torch.stack(rows).to(clip.device)


def prune_prompts(scores: torch.Tensor, tau: float) -> torch.Tensor:
    """Boolean mask over prompts: robust z-score (median / MAD), standardised, kept within ``tau``.
    A degenerate spread (MAD or std of zero) keeps every prompt rather than dividing by zero."""
    median = scores.median()
    mad = (scores - median).abs().median()
    if float(mad) == 0.0:
        return torch.ones_like(scores, dtype=torch.bool)
    z = (scores - median) / mad
    spread = z.std()
    if not torch.isfinite(spread) or float(spread) == 0.0:
        return torch.ones_like(scores, dtype=torch.bool)
    return ((z - z.mean()) / spread).abs() <= tau


def biomedcoop_losses(logits: torch.Tensor, text_features: torch.Tensor, image_features: torch.Tensor,
                      llm: torch.Tensor, scale: float, cfg: BiomedCoOpConfig) -> dict[str, torch.Tensor]:
    """SCCM and KDSP for one batch. ``logits`` are the student's, ``llm`` is ``[C, P, D]`` normalised."""
    with torch.no_grad():
        per_prompt = scale * torch.einsum("bd,cpd->pbc", image_features, llm)  # [P, B, C]
        scores = per_prompt.max(dim=-1).values.mean(dim=-1)  # [P]
        keep = prune_prompts(scores, cfg.tau)
        selected = F.normalize(llm[:, keep].mean(dim=1), dim=-1)
        teacher = scale * image_features @ selected.T
    mean_llm = F.normalize(llm.mean(dim=1), dim=-1)
    sccm = F.mse_loss(text_features, mean_llm) * cfg.sccm_weight
    kdsp = F.kl_div(F.log_softmax(logits, dim=1), F.log_softmax(teacher, dim=1), reduction="sum",
                    log_target=True) / logits.numel() * cfg.kdsp_weight
    return {"sccm": sccm, "kdsp": kdsp, "kept_prompts": keep.float().sum()}


class BiomedCoOpTask:
    """A core-Trainer task: CE + SCCM + KDSP on cached (frozen) image features."""

    def __init__(self, clip: ClipModel, classifier: CoOpClassifier, llm: torch.Tensor, cfg: BiomedCoOpConfig) -> None:
        self.clip = clip
        self.module = classifier
        self.llm = llm
        self.cfg = cfg

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "features" in batch:
            features = batch["features"].float()
        else:
            features = self.clip.encode_image_tensor(batch["pixels"])
        features = F.normalize(features, dim=-1)
        text = self.module.text_features()
        logits = self.module.scale * features.to(text.dtype) @ text.T
        ce = F.cross_entropy(logits, batch["label"].to(logits.device))
        extra = biomedcoop_losses(logits, text, features.to(text.dtype), self.llm.to(text.dtype),
                                  self.module.scale, self.cfg)
        return {"loss": ce + extra["sccm"] + extra["kdsp"], "ce": ce, **extra}

    def config(self) -> dict[str, Any]:
        return {"method": "biomedcoop", **self.cfg.to_dict()}
