"""MindEye/BrainCLIP-style MLP decoder: voxels -> CLIP image and text embeddings.

MindEye's ``BrainNetwork``: ``Linear(voxels, h)`` + LayerNorm + GELU + Dropout(0.5), then residual
blocks ``x = block(x) + x`` with ``block = Linear(h, h) + LayerNorm + GELU + Dropout(0.15)``. Here one
backbone feeds one head per CLIP space (BrainCLIP supervises with both image and text): each head is
``Linear(h, d)`` followed, when ``projector > 0``, by MindEye's projector MLP (LN, GELU, Linear(d, p),
LN, GELU, Linear(p, p), LN, GELU, Linear(p, d)); the contrastive losses and retrieval use the head's
output. Sizes are data (``MLPConfig``), saved as JSON with the weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from clipsuite.core.errors import InputError

SPACES = ("image", "text")


@dataclass(frozen=True)
class MLPConfig:
    n_voxels: int
    embed_dim: int
    hidden: int = 4096          # MindEye: 4096
    blocks: int = 4             # MindEye: 4
    projector: int = 0          # MindEye: 2048 (0: no projector)
    input_dropout: float = 0.5
    block_dropout: float = 0.15
    spaces: tuple[str, ...] = SPACES

    def __post_init__(self) -> None:
        if min(self.n_voxels, self.embed_dim, self.hidden) < 1 or self.blocks < 0 or self.projector < 0:
            raise InputError(f"MLP decoder: sizes must be positive (got {self})")
        if not self.spaces or any(s not in SPACES for s in self.spaces):
            raise InputError(f"MLP decoder: spaces must be among {SPACES} (got {self.spaces})")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["spaces"] = list(self.spaces)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MLPConfig:
        try:
            return cls(**{**data, "spaces": tuple(data.get("spaces", SPACES))})
        except TypeError as error:
            raise InputError(f"MLP decoder config: {error}") from None


def _block(n_in: int, n_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_out), nn.LayerNorm(n_out), nn.GELU(), nn.Dropout(dropout))


def _head(hidden: int, dim: int, projector: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(hidden, dim)]
    if projector:
        layers += [nn.LayerNorm(dim), nn.GELU(), nn.Linear(dim, projector), nn.LayerNorm(projector), nn.GELU(),
                   nn.Linear(projector, projector), nn.LayerNorm(projector), nn.GELU(), nn.Linear(projector, dim)]
    return nn.Sequential(*layers)


class BrainMLP(nn.Module):
    """``forward(voxels) -> {space: (batch, embed_dim)}`` (not normalised)."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = _block(config.n_voxels, config.hidden, config.input_dropout)
        self.blocks = nn.ModuleList(_block(config.hidden, config.hidden, config.block_dropout)
                                    for _ in range(config.blocks))
        self.heads = nn.ModuleDict({s: _head(config.hidden, config.embed_dim, config.projector)
                                    for s in config.spaces})

    def forward(self, voxels: torch.Tensor) -> dict[str, torch.Tensor]:
        if voxels.ndim != 2 or voxels.shape[1] != self.config.n_voxels:
            raise InputError(f"MLP decoder expects (batch, {self.config.n_voxels}) voxels, got {tuple(voxels.shape)}")
        x = self.stem(voxels)
        for block in self.blocks:
            x = block(x) + x
        return {space: head(x) for space, head in self.heads.items()}
