"""The vision tower of an open_clip ``VisionTransformer`` as steps (the only code that walks it)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn

from clipsuite.core.errors import ModelError
from clipsuite.core.towers.base import VisionTower
from clipsuite.core.towers.positions import resample_grid


def _pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (tuple, list)) else (int(value), int(value))


class OpenClipVisionTower(VisionTower):
    """open_clip's ``VisionTransformer``: token pooling (``tok``) or average pooling, no attentional
    pooler. Other image towers (ResNets, timm trunks) raise ``ModelError`` when the tower is made."""

    module: VisionTransformer  # (open_clip has no type information: mypy sees Any)

    def __init__(self, visual: nn.Module, name: str = "model") -> None:
        if not isinstance(visual, VisionTransformer):
            raise ModelError(f"{name}: this needs an open_clip ViT image tower, not {type(visual).__name__}")
        if getattr(visual, "attn_pool", None) is not None or visual.pool_type not in ("tok", "avg"):
            raise ModelError(f"{name}: image towers with an attentional pooler (CoCa) are not supported")
        self.module = visual
        self.name = name
        self._positions: dict[tuple[int, int], torch.Tensor] = {}

    # ---- shape facts -------------------------------------------------------------------------
    @property
    def width(self) -> int:
        return int(self.module.transformer.width)

    @property
    def depth(self) -> int:
        return len(self.module.transformer.resblocks)

    @property
    def output_dim(self) -> int:
        proj = self.module.proj
        return int(proj.shape[1]) if proj is not None else self.width

    @property
    def patch_size(self) -> tuple[int, int]:
        return _pair(self.module.patch_size)

    @property
    def grid_size(self) -> tuple[int, int]:
        return _pair(self.module.grid_size)

    @property
    def patch_embedding(self) -> nn.Conv2d:
        return self.module.conv1

    @property
    def pools_class_token(self) -> bool:
        return self.module.pool_type == "tok"

    @property
    def dtype(self) -> torch.dtype:
        return self.module.conv1.weight.dtype

    # ---- steps -------------------------------------------------------------------------------
    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """Position embeddings for ``grid``: the model's own at the native grid, resampled otherwise
        (recomputed while training so gradients reach the parameter, cached in eval without grad)."""
        pos = self.module.positional_embedding
        if grid == self.grid_size:
            return pos
        if torch.is_grad_enabled() and pos.requires_grad:
            return resample_grid(pos, self.prefix_tokens, self.grid_size, grid)
        cached = self._positions.get(grid)
        if cached is None or cached.device != pos.device or cached.dtype != pos.dtype:
            cached = resample_grid(pos.detach(), self.prefix_tokens, self.grid_size, grid)
            self._positions[grid] = cached
        return cached

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        visual = self.module
        grid = self.grid_for(pixels)
        x = visual.conv1(pixels.to(self.dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.position_embedding(grid).to(x.dtype)
        return visual.patch_dropout(x)

    def pre_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.module.ln_pre(tokens)

    def _block(self, index: int) -> Any:
        """Block ``index``: open_clip's ``ResidualAttentionBlock`` or a custom one (untyped, like open_clip)."""
        return self.module.transformer.resblocks[index]

    def block(self, index: int, tokens: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        block = self._block(index)
        if not cls_only:
            return block(tokens)
        if not isinstance(getattr(block, "attn", None), nn.MultiheadAttention):
            return block(tokens)[:, :1]  # custom blocks: exact, just without the saving
        # Only the class token's output is needed: attend from it alone (keys/values from all
        # tokens) and run the MLP on one token, ~1/L of the block's MLP cost.
        normed = block.ln_1(tokens)
        attended = block.attention(q_x=normed[:, :1], k_x=normed, v_x=normed)
        cls = tokens[:, :1] + block.ls_1(attended)
        return cls + block.ls_2(block.mlp(block.ln_2(cls)))

    def vv_block(self, index: int, tokens: torch.Tensor) -> torch.Tensor:
        block = self._block(index)
        attn = getattr(block, "attn", None)
        if not isinstance(attn, nn.MultiheadAttention):
            raise ModelError(f"{self.name}: v-v attention needs standard attention blocks, "
                             f"not {type(block).__name__}")
        width, heads = attn.embed_dim, attn.num_heads
        normed = block.ln_1(tokens)
        bias = attn.in_proj_bias[2 * width:] if attn.in_proj_bias is not None else None
        v = F.linear(normed, attn.in_proj_weight[2 * width:], bias)
        batch, length, _ = v.shape
        v = v.view(batch, length, heads, width // heads).transpose(1, 2)
        out = F.scaled_dot_product_attention(v, v, v).transpose(1, 2).reshape(batch, length, width)
        return tokens + block.ls_1(attn.out_proj(out))

    def post_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.module.ln_post(tokens)

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        out = self.module.ln_post(tokens)
        return out @ self.module.proj if self.module.proj is not None else out

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        pooled, _ = self.module._pool(tokens)
        return pooled @ self.module.proj if self.module.proj is not None else pooled
