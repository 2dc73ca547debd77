"""Image features with a DPAM (diagonally prominent attention map) patch path, as AnomalyCLIP's
reference code runs it (zqhang/AnomalyCLIP, ``AnomalyCLIP_forward`` with ``ffn=False``).

In the last ``dpam_layer - 1`` blocks a second token stream runs beside the normal one: at each such
block it adds the block's value-value self-attention (``softmax(v v^T / sqrt(d))`` over the value
projection of the *normal* stream's normed input, then the output projection) and skips the FFN.
The image embedding comes from the unchanged path; patch tokens are read at the blocks in
``layers`` (1-indexed, the reference's ``features_list``), from the v-v stream where it exists, and
projected with ``ln_post`` and ``proj``. One pass: the extra cost is the v-v attention only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from clipsuite.core.errors import InputError
from clipsuite.core.towers import VisionTower

REFERENCE_DEPTH = 24                  # ViT-L/14, the backbone the reference's defaults are set for
REFERENCE_FEATURES = (6, 12, 18, 24)  # --features_list
REFERENCE_DPAM_LAYER = 20             # DPAM_layer: blocks 6..24 (the last 19) take the v-v path


def default_features(depth: int) -> tuple[int, ...]:
    """The reference's quarter-depth layers scaled to ``depth`` (24 -> 6 12 18 24, 12 -> 3 6 9 12)."""
    return tuple(sorted({max(1, round(depth * k / REFERENCE_DEPTH)) for k in REFERENCE_FEATURES}))


def default_dpam_layer(depth: int) -> int:
    """The reference's ``DPAM_layer`` scaled: the v-v path starts at the first feature layer
    (24 -> 20, i.e. blocks 6..24; 12 -> 11, blocks 3..12; 4 -> 5, all blocks)."""
    return depth - default_features(depth)[0] + 2


def check_layers(depth: int, layers: Sequence[int], dpam_layer: int) -> None:
    bad = [layer for layer in layers if not 1 <= layer <= depth]
    if not layers or bad:
        raise InputError(f"feature layers must be 1..{depth} for this backbone (got {list(layers)})")
    if not 1 <= dpam_layer <= depth + 1:
        raise InputError(f"dpam_layer must be 1 (no DPAM) .. {depth + 1} (every block) (got {dpam_layer})")


def encode_with_dpam(tower: VisionTower, pixels: torch.Tensor, layers: Sequence[int],
                     dpam_layer: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(image embedding ``[B, D]``, one projected patch embedding ``[B, P, D]`` per layer in ``layers``)."""
    x = tower.pre_norm(tower.embed(pixels))
    start = tower.depth - (dpam_layer - 1)  # 0-indexed first DPAM block; == depth when DPAM is off
    vv: torch.Tensor | None = None
    out = []
    for i in range(tower.depth):
        if i >= start:
            # the v-v stream adds the v-v attention of the normal stream's input (the reference's x_res)
            step = tower.vv_block(i, x) - x
            vv = x + step if vv is None else vv + step
        x = tower.block(i, x)
        if i + 1 in layers:
            out.append(tower.project((vv if vv is not None else x)[:, tower.prefix_tokens:]))
    return tower.pool(x), out
