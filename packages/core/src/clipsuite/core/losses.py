"""Losses shared by every domain: CLIP and SigLIP contrastive (distributed-aware), focal, dice,
distillation.

Distributed behaviour follows open_clip: with ``local_loss`` and ``gather_with_grad`` each process
scores its own rows against the gathered batch of all processes, and gradients flow back through the
gather, so the mean over processes (what gradient averaging computes) equals the single-process loss
on the global batch while memory grows linearly, not quadratically, with the number of processes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGather(torch.autograd.Function):
    """Concatenate every process's tensor along dim 0; the backward pass sums, over processes, the
    gradients that reach this process's slice (all_reduce, which every backend has)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        world_size, rank = dist.get_world_size(), dist.get_rank()
        ctx.rank, ctx.rows = rank, tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """``[world * N, ...]`` from every process's ``[N, ...]``, differentiable (same size on all)."""
    return _AllGather.apply(tensor)


def _gather(features: torch.Tensor, with_grad: bool, rank: int, world_size: int) -> torch.Tensor:
    if with_grad:
        return all_gather_with_grad(features)
    parts = [torch.zeros_like(features) for _ in range(world_size)]
    dist.all_gather(parts, features.contiguous())
    parts[rank] = features  # keep this process's gradient path
    return torch.cat(parts, dim=0)


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor | float,
              logit_bias: torch.Tensor | float | None = None, *, local_loss: bool = True,
              gather_with_grad: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE over matching rows (features already normalized, ``logit_scale`` already
    exponentiated, as ``open_clip.ClipLoss`` takes them)."""
    rank, world_size = _world()
    n = image_features.shape[0]
    labels = torch.arange(n, device=image_features.device)
    if world_size > 1:
        all_images = _gather(image_features, gather_with_grad, rank, world_size)
        all_texts = _gather(text_features, gather_with_grad, rank, world_size)
        if local_loss:
            logits_per_image = logit_scale * image_features @ all_texts.T
            logits_per_text = logit_scale * text_features @ all_images.T
            labels = labels + n * rank
        else:
            logits_per_image = logit_scale * all_images @ all_texts.T
            logits_per_text = logits_per_image.T
            labels = torch.arange(all_images.shape[0], device=image_features.device)
    else:
        logits_per_image = logit_scale * image_features @ text_features.T
        logits_per_text = logit_scale * text_features @ image_features.T
    if logit_bias is not None:
        logits_per_image = logits_per_image + logit_bias
        logits_per_text = logits_per_text + logit_bias
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def soft_clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor | float,
                   targets: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy against soft targets ``[N, N]`` (rows sum to 1), e.g. every pair with
    the same caption as a positive when captions repeat within a batch. Local to the process."""
    logits = logit_scale * image_features @ text_features.T
    text_targets = targets.T / targets.T.sum(1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, text_targets)) / 2


def same_caption_targets(tokens: torch.Tensor) -> torch.Tensor:
    """Row-normalised ``[N, N]`` targets: 1 where two token rows are identical."""
    same = (tokens[:, None, :] == tokens[None, :, :]).all(dim=-1).float()
    return same / same.sum(dim=1, keepdim=True)


def _siglip_block(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor | float,
                  logit_bias: torch.Tensor | float | None, negative_only: bool) -> torch.Tensor:
    logits = logit_scale * image_features @ text_features.T
    if logit_bias is not None:
        logits = logits + logit_bias
    n = image_features.shape[0]
    labels = -torch.ones(n, text_features.shape[0], device=logits.device, dtype=logits.dtype)
    if not negative_only:
        labels = labels + 2 * torch.eye(n, text_features.shape[0], device=logits.device, dtype=logits.dtype)
    return -F.logsigmoid(labels * logits).sum() / n


def siglip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor | float,
                logit_bias: torch.Tensor | float | None) -> torch.Tensor:
    """Sigmoid pairwise loss; across processes each one's images meet every process's texts as
    negatives (open_clip's ``dist_impl='gather'``), summed per process."""
    loss = _siglip_block(image_features, text_features, logit_scale, logit_bias, negative_only=False)
    rank, world_size = _world()
    if world_size > 1:
        all_texts = all_gather_with_grad(text_features).chunk(world_size, dim=0)
        for other, texts in enumerate(all_texts):
            if other != rank:
                loss = loss + _siglip_block(image_features, texts, logit_scale, logit_bias, negative_only=True)
    return loss


class ClipLoss(nn.Module):
    def __init__(self, local_loss: bool = True, gather_with_grad: bool = True) -> None:
        super().__init__()
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor,
                logit_scale: torch.Tensor | float, logit_bias: torch.Tensor | float | None = None) -> torch.Tensor:
        return clip_loss(image_features, text_features, logit_scale, logit_bias,
                         local_loss=self.local_loss, gather_with_grad=self.gather_with_grad)


class SigLipLoss(nn.Module):
    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor,
                logit_scale: torch.Tensor | float, logit_bias: torch.Tensor | float | None) -> torch.Tensor:
        return siglip_loss(image_features, text_features, logit_scale, logit_bias)


# ---- dense / classification losses ----------------------------------------------------------------
def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"unknown reduction '{reduction}' (mean, sum or none)")


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               alpha: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Multi-class focal loss ``-alpha_t (1 - p_t)^gamma log p_t``: ``logits`` ``[B, C, ...]``,
    integer ``target`` ``[B, ...]`` (as for anomaly maps with a normal/anomalous channel)."""
    log_probs = F.log_softmax(logits.float(), dim=1)
    log_pt = log_probs.gather(1, target.long().unsqueeze(1)).squeeze(1)
    loss = -((1.0 - log_pt.exp()) ** gamma) * log_pt
    if alpha is not None:
        loss = loss * alpha.to(loss.device, loss.dtype)[target.long()]
    return _reduce(loss, reduction)


def sigmoid_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "mean") -> torch.Tensor:
    """Binary focal loss on logits with float targets (the RetinaNet form, as torchvision's)."""
    target = target.to(logits.dtype)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    return _reduce(loss, reduction)


def dice_loss(probs: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """Soft dice ``1 - (2|P∩T| + s) / (|P| + |T| + s)`` per sample over all non-batch dims;
    ``probs`` are probabilities (not logits) in [0, 1]."""
    p = probs.reshape(probs.shape[0], -1).float()
    t = target.reshape(target.shape[0], -1).float()
    intersection = (p * t).sum(dim=1)
    loss = 1.0 - (2.0 * intersection + smooth) / (p.sum(dim=1) + t.sum(dim=1) + smooth)
    return _reduce(loss, reduction)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float = 1.0) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, mean over the batch (Hinton et al.);
    the teacher gets no gradient."""
    t = temperature
    student = F.log_softmax(student_logits.float() / t, dim=-1)
    teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * (t * t)
