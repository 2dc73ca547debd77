"""Whole tensors from FSDP2 shards and back (plain tensors pass through unchanged).

Under FSDP2 a parameter is a ``DTensor`` holding this process's shard; checkpoints hold whole
tensors. ``full_tensor`` is a collective: every process calls it, in the same order.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor on the CPU (gathered from every process for a ``DTensor``)."""
    whole = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
    return whole.detach().cpu()


def shard_like(whole: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``whole`` laid out as ``like`` is: this process's shard for a ``DTensor``, else on its device.
    Every process passes the same ``whole``."""
    if isinstance(like, DTensor):
        return distribute_tensor(whole.to(like.device_mesh.device_type), like.device_mesh, like.placements)
    return whole.to(like.device)


def vectorize_scalars(module: nn.Module) -> frozenset[str]:
    """FSDP2 cannot shard a 0-dim parameter (open_clip's ``logit_scale`` is one): re-register each as
    a 1-element vector, which broadcasts the same in arithmetic. Returns their names; checkpoints
    save them in their own 0-dim shape."""
    names = []
    for owner_name, owner in module.named_modules():
        for attr, param in list(owner.named_parameters(recurse=False)):
            if param.ndim == 0:
                setattr(owner, attr, nn.Parameter(param.detach().reshape(1), requires_grad=param.requires_grad))
                names.append(f"{owner_name}.{attr}" if owner_name else attr)
    return frozenset(names)
