"""Pieces of an open_clip ``VisionTransformer`` forward, exposed so methods can re-run parts of it.

WinCLIP re-runs the transformer on sub-sequences (CLS + one window's tokens); AnomalyCLIP and the
adapters need patch tokens from a modified last stretch of blocks. Only the standard open_clip
``VisionTransformer`` with ``ResidualAttentionBlock`` s (token pooling, no attentional pooler) is
supported; anything else raises ``ModelError`` up front rather than computing something different.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clipsuite.core.errors import ModelError


def check_vit(visual: nn.Module, name: str = "model") -> None:
    needed = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "ln_post")
    if not all(hasattr(visual, attr) for attr in needed) or getattr(visual, "attn_pool", None) is not None:
        raise ModelError(f"{name}: anomaly methods need an open_clip ViT image tower (CLS-token pooling)")
    if getattr(visual, "pool_type", "tok") != "tok":
        raise ModelError(f"{name}: anomaly methods need CLS-token pooling (pool_type 'tok')")
    block = visual.transformer.resblocks[0]
    if not isinstance(getattr(block, "attn", None), nn.MultiheadAttention):
        raise ModelError(f"{name}: unsupported ViT block type {type(block).__name__}")


def embed(visual: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Patch embedding + CLS + positional embedding + ``ln_pre``: ``[B, 1 + P, width]``.

    ``ln_pre`` acts on each token alone, so gathering window tokens after it equals gathering before
    it (anomalib gathers before, then applies ``ln_pre``).
    """
    x = visual.conv1(pixels)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
    return visual.ln_pre(x)


def block_cls_only(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One residual block evaluated for the CLS token only (keys/values from all tokens).

    The last block's patch outputs are never pooled, so skipping their out-projection and MLP gives
    the same CLS output for ~1/(sequence length) of the block's MLP cost.
    """
    normed = block.ln_1(x)
    attended = block.attention(q_x=normed[:, :1], k_x=normed, v_x=normed)
    cls = x[:, :1] + block.ls_1(attended)
    return cls + block.ls_2(block.mlp(block.ln_2(cls)))


def run_blocks(visual: nn.Module, x: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
    """All transformer blocks on batch-first tokens; with ``cls_only`` the result is ``[B, 1, width]``."""
    blocks = visual.transformer.resblocks
    last = len(blocks) - 1
    for i, block in enumerate(blocks):
        x = block_cls_only(block, x) if (cls_only and i == last) else block(x)
    return x


def project(visual: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``ln_post`` then the image projection (into the joint space)."""
    out = visual.ln_post(tokens)
    return out @ visual.proj if visual.proj is not None else out


def window_indices(grid: tuple[int, int], kernel: int, stride: int = 1) -> torch.Tensor:
    """Patch indices of every ``kernel x kernel`` window, ``[n_windows, kernel**2]``, in the order of
    ``F.unfold`` (the order anomalib's ``make_masks`` uses, transposed)."""
    height, width = grid
    if height < kernel or width < kernel:
        raise ModelError(f"window size {kernel} is larger than the {height}x{width} patch grid")
    ids = torch.arange(height * width, dtype=torch.float32).reshape(1, 1, height, width)
    return F.unfold(ids, kernel_size=kernel, stride=stride)[0].long().T.contiguous()


def window_coverage(indices: torch.Tensor, n_patches: int) -> torch.Tensor:
    """Boolean ``[n_patches, n_windows]``: True where the window covers the patch."""
    cover = torch.zeros(n_patches, indices.shape[0], dtype=torch.bool)
    cover[indices.T.reshape(-1), torch.arange(indices.shape[0]).repeat(indices.shape[1])] = True
    return cover


def harmonic_mean_over_windows(window_scores: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Spread ``[B, n_windows]`` scores to ``[B, n_patches]`` by the harmonic mean of covering windows.

    A zero window score makes the patch score zero (as in anomalib: 1/0 = inf, count/inf = 0); an
    uncovered patch scores zero.
    """
    inverse = torch.where(coverage.unsqueeze(0), (1.0 / window_scores).unsqueeze(1), 0.0).sum(-1)
    return (coverage.sum(dim=1).to(window_scores.dtype) / inverse).nan_to_num(posinf=0.0)
