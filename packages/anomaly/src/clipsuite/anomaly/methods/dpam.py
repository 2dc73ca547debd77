"""Image features with a DPAM (diagonally prominent attention map) patch path, as AnomalyCLIP.

From block ``start`` on, a second token stream runs beside the normal one: each block applies
value-value self-attention (``softmax(v v^T / sqrt(d))`` over the block's own value projection, then
its output projection) with a residual and no FFN. The CLS embedding comes from the unchanged path;
the patch tokens from the v-v path, whose attention keeps each patch focused on itself, which is what
makes CLIP patch tokens usable for segmentation. One pass: the extra cost is the v-v attention only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clipsuite.anomaly.methods import vit


def vv_attention(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    attn: nn.MultiheadAttention = block.attn
    width, heads = attn.embed_dim, attn.num_heads
    weight_v = attn.in_proj_weight[2 * width:]
    bias_v = attn.in_proj_bias[2 * width:] if attn.in_proj_bias is not None else None
    v = F.linear(x, weight_v, bias_v)
    batch, length, _ = v.shape
    v = v.view(batch, length, heads, width // heads).transpose(1, 2)
    out = F.scaled_dot_product_attention(v, v, v)
    out = out.transpose(1, 2).reshape(batch, length, width)
    return attn.out_proj(out)


def encode_with_dpam(visual: nn.Module, pixels: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(image embedding ``[B, D]``, v-v patch embeddings ``[B, P, D]``), both projected, unnormalised."""
    x = vit.embed(visual, pixels)
    blocks = visual.transformer.resblocks
    start = start % len(blocks)
    vv = None
    for i, block in enumerate(blocks):
        if i == start:
            vv = x
        if vv is not None:
            vv = vv + block.ls_1(vv_attention(block, block.ln_1(vv)))
        x = block(x)
    assert vv is not None
    return vit.project(visual, x[:, 0]), vit.project(visual, vv[:, 1:])


def dpam_start(depth: int) -> int:
    """AnomalyCLIP applies DPAM to the later blocks; we take the second half (12 -> 6, 4 -> 2)."""
    return depth // 2
