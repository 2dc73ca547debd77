"""Image features with a DPAM (diagonally prominent attention map) patch path, as AnomalyCLIP.

From block ``start`` on, a second token stream runs beside the normal one: each block applies
value-value self-attention (``softmax(v v^T / sqrt(d))`` over the block's own value projection, then
its output projection) with a residual and no FFN (the tower's ``vv_block``). The image embedding
comes from the unchanged path; the patch tokens from the v-v path, whose attention keeps each patch
focused on itself, which is what makes CLIP patch tokens usable for segmentation. One pass: the extra
cost is the v-v attention only.
"""

from __future__ import annotations

import torch

from clipsuite.core.towers import VisionTower


def encode_with_dpam(tower: VisionTower, pixels: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(image embedding ``[B, D]``, v-v patch embeddings ``[B, P, D]``), both projected, unnormalised."""
    x = tower.pre_norm(tower.embed(pixels))
    start = start % tower.depth
    vv = x  # the v-v stream branches off at the input of block ``start``
    for i in range(tower.depth):
        if i >= start:
            vv = tower.vv_block(i, x if i == start else vv)
        x = tower.block(i, x)
    return tower.pool(x), tower.project(vv[:, tower.prefix_tokens:])


def dpam_start(depth: int) -> int:
    """AnomalyCLIP applies DPAM to the later blocks; we take the second half (12 -> 6, 4 -> 2)."""
    return depth // 2
