"""MindEye/BrainCLIP-style MLP decoder: voxels -> CLIP image and text embeddings.

MindEye's ``BrainNetwork``: ``Linear(voxels, h)`` + LayerNorm + GELU + Dropout(0.5), then residual
blocks ``x = block(x) + x`` with ``block = Linear(h, h) + LayerNorm + GELU + Dropout(0.15)``. Here one
backbone feeds one head per CLIP space (BrainCLIP supervises with both image and text): each head is
``Linear(h, d)`` followed, when ``projector > 0``, by MindEye's projector MLP (LN, GELU, Linear(d, p),
LN, GELU, Linear(p, p), LN, GELU, Linear(p, d)); the contrastive losses and retrieval use the head's
output. Sizes are data (``MLPConfig``), saved as JSON with the weights.

The VAE variant (``vae_latent > 0``; BrainCLIP names a VAE mapping network but publishes no code, so
this is our reading): the backbone's features give a Gaussian posterior ``N(mu, exp(logvar))`` over a
``vae_latent``-wide code; training samples the code by reparameterisation (eval uses ``mu``), the
heads read the code, and a linear decoder reconstructs the voxels from it. ``DecoderObjective`` adds
the KL divergence to ``N(0, I)`` and the reconstruction error to the contrastive losses.
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
    vae_latent: int = 0         # > 0: the VAE variant with a code this wide (0: plain MLP)

    def __post_init__(self) -> None:
        if min(self.n_voxels, self.embed_dim, self.hidden) < 1 or min(self.blocks, self.projector,
                                                                        self.vae_latent) < 0:
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
        width = config.vae_latent or config.hidden
        if config.vae_latent:
            self.posterior = nn.Linear(config.hidden, 2 * config.vae_latent)  # mu and logvar
            self.reconstruct = nn.Linear(config.vae_latent, config.n_voxels)
        self.heads = nn.ModuleDict({s: _head(width, config.embed_dim, config.projector) for s in config.spaces})

    def forward(self, voxels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_parts(voxels)[0]

    def forward_parts(self, voxels: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The heads' outputs and, for the VAE variant, ``mu``, ``logvar`` and the reconstructed voxels."""
        if voxels.ndim != 2 or voxels.shape[1] != self.config.n_voxels:
            raise InputError(f"MLP decoder expects (batch, {self.config.n_voxels}) voxels, got {tuple(voxels.shape)}")
        x = self.stem(voxels)
        for block in self.blocks:
            x = block(x) + x
        extra: dict[str, torch.Tensor] = {}
        if self.config.vae_latent:
            mu, logvar = self.posterior(x).chunk(2, dim=1)
            # reparameterised sample while training; the posterior mean when decoding
            x = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
            extra = {"mu": mu, "logvar": logvar, "recon": self.reconstruct(x)}
        return {space: head(x) for space, head in self.heads.items()}, extra
