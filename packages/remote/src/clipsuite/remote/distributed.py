"""Training across processes (DDP under ``accelerate launch`` / ``torchrun``): the contrastive loss sees
every process's batch as negatives, and running statistics are averaged over processes.

The soft-target contrastive loss follows open_clip's ``local_loss`` + ``gather_with_grad``: each
process scores its own rows against the gathered features of all processes (the core's
``all_gather_with_grad``), with soft targets computed on the gathered global batch (which image owns
which caption, from gathered ids). The mean over processes, which DDP's gradient averaging takes,
then equals the single-process loss on the global batch. With one process it is the core's
``soft_clip_loss`` itself.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from clipsuite.core.losses import all_gather_with_grad, soft_clip_loss


def world() -> tuple[int, int]:
    """``(rank, world size)`` of the initialised process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's ``tensor`` (same shape everywhere) concatenated along dim 0, without gradient."""
    _, size = world()
    if size == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def all_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over processes (a new tensor; the input is unchanged)."""
    _, size = world()
    if size == 1:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out)
    return out / size


def soft_targets(owns: torch.Tensor, image_ids: torch.Tensor, caption_ids: torch.Tensor) -> torch.Tensor:
    """Row-normalised ``[N, N]``: image ``image_ids[i]`` is described by caption ``caption_ids[j]``."""
    positives = owns[image_ids.cpu()][:, caption_ids.cpu()].float()
    return positives / positives.sum(dim=1, keepdim=True)


def gathered_soft_clip_loss(image_features: torch.Tensor, text_features: torch.Tensor,
                            logit_scale: torch.Tensor, owns: torch.Tensor, image_ids: torch.Tensor,
                            caption_ids: torch.Tensor) -> torch.Tensor:
    """Soft-target symmetric InfoNCE with negatives from every process (``owns``: ``[images, captions]``
    bool; ids index it). Every process must hold a batch of the same size (the Trainer pads)."""
    rank, size = world()
    if size == 1:
        targets = soft_targets(owns, image_ids, caption_ids).to(image_features.device)
        return soft_clip_loss(image_features, text_features, logit_scale, targets)
    rows = image_features.shape[0]
    all_images = all_gather_with_grad(image_features)
    all_texts = all_gather_with_grad(text_features)
    targets = soft_targets(owns, gather(image_ids), gather(caption_ids)).to(image_features.device)
    text_targets = targets.T / targets.T.sum(dim=1, keepdim=True)  # as soft_clip_loss weighs them
    mine = slice(rank * rows, (rank + 1) * rows)
    # own rows with their direct gradient path; the gathered copies carry the other processes' paths
    logits_per_image = logit_scale * image_features @ all_texts.T
    logits_per_text = logit_scale * text_features @ all_images.T
    return (F.cross_entropy(logits_per_image, targets[mine]) + F.cross_entropy(logits_per_text, text_targets[mine])) / 2
