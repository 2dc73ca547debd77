"""Classifier heads over normalised image features: what training-free and linear methods produce.

Each head is a small ``nn.Module`` mapping image features ``[N, D]`` to logits ``[N, C]``, with its
tensors and scalar parameters exposed for saving (``io``). They need no text tower once built.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class LinearHead(nn.Module):
    """``scale * f @ W^T + b``: zero-shot prototypes, exported CoOp/KgCoOp prompts, CuPL, probes."""

    kind = "linear"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, scale: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone().float())
        self.bias = nn.Parameter(bias.detach().clone().float()) if bias is not None else None
        self.scale = float(scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.scale * features.to(self.weight) @ self.weight.T
        return logits + self.bias if self.bias is not None else logits

    def params(self) -> dict[str, Any]:
        return {"scale": self.scale}


class TipAdapterHead(nn.Module):
    """Tip-Adapter: ``scale * f @ T^T + alpha * exp(-beta * (1 - f @ K^T)) @ V``.

    ``keys`` ``[N, D]`` are (mean-over-views) training features, ``values`` ``[N, C]`` one-hot labels;
    Tip-Adapter-F makes the keys trainable.
    """

    kind = "tip"
    zero_shot: torch.Tensor  # registered buffers
    values: torch.Tensor

    def __init__(self, zero_shot: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, alpha: float = 1.0,
                 beta: float = 1.0, scale: float = 100.0, train_keys: bool = False) -> None:
        super().__init__()
        self.register_buffer("zero_shot", zero_shot.detach().clone().float())
        self.keys = nn.Parameter(keys.detach().clone().float(), requires_grad=train_keys)
        self.register_buffer("values", values.detach().clone().float())
        self.alpha, self.beta, self.scale = float(alpha), float(beta), float(scale)

    def parts(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(zero-shot logits, cache logits before alpha) -- what the alpha/beta search reuses."""
        features = features.to(self.keys)
        affinity = features @ self.keys.T
        return self.scale * features @ self.zero_shot.T, affinity

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        clip_logits, affinity = self.parts(features)
        return clip_logits + self.alpha * torch.exp(-self.beta * (1 - affinity)) @ self.values

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "scale": self.scale}


class GDAHead(nn.Module):
    """GDA: ``scale * f @ T^T + alpha * (f @ W^T + b)``."""

    kind = "gda"
    zero_shot: torch.Tensor  # registered buffers
    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, zero_shot: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, alpha: float = 1.0,
                 scale: float = 100.0) -> None:
        super().__init__()
        self.register_buffer("zero_shot", zero_shot.detach().clone().float())
        self.register_buffer("weight", weight.detach().clone().float())
        self.register_buffer("bias", bias.detach().clone().float())
        self.alpha, self.scale = float(alpha), float(scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = features.to(self.weight)
        return self.scale * features @ self.zero_shot.T + self.alpha * (features @ self.weight.T + self.bias)

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "scale": self.scale}


class DescriptorHead(nn.Module):
    """Descriptor classification: a class scores the mean similarity of its descriptor prompts."""

    kind = "descriptor"
    embeddings: torch.Tensor  # registered buffers
    owner: torch.Tensor

    def __init__(self, embeddings: torch.Tensor, owner: torch.Tensor, n_classes: int, scale: float = 100.0) -> None:
        super().__init__()
        self.register_buffer("embeddings", embeddings.detach().clone().float())
        self.register_buffer("owner", owner.detach().clone().long())
        self.n_classes, self.scale = int(n_classes), float(scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        sims = self.scale * features.to(self.embeddings) @ self.embeddings.T
        totals = torch.zeros(features.shape[0], self.n_classes, device=sims.device, dtype=sims.dtype)
        totals = totals.index_add(1, self.owner, sims)
        return totals / torch.bincount(self.owner, minlength=self.n_classes).clamp(min=1).to(sims.dtype)

    def params(self) -> dict[str, Any]:
        return {"n_classes": self.n_classes, "scale": self.scale}


HEADS: dict[str, type[nn.Module]] = {h.kind: h for h in (LinearHead, TipAdapterHead, GDAHead, DescriptorHead)}
