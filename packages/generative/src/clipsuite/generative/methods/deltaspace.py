"""DeltaSpace (DeltaEdit): a text-free mapper from CLIP image-space deltas to generator-conditioning deltas.

The differences of normalised CLIP image embeddings line up with the differences of their captions'
text embeddings, so the mapper is trained on image pairs only: input ``[c1, c2 - c1]`` (normalised
CLIP image embeddings of two images), target ``e2 - e1`` (the change of the generator's conditioning
between them), loss L2 + (1 - cos). At inference the delta comes from text: target prompt minus
neutral prompt, normalised and scaled to the typical length of the image deltas it was trained on,
and the conditioning moves by ``strength`` times the mapper's answer.

The generator here is an image-variation diffusion model (``editing.VariationGenerator``) whose
conditioning is the un-normalised projected CLIP image embedding (as diffusers'
``StableDiffusionImageVariationPipeline`` feeds ``image_embeds``), so ``e`` is that vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from clipsuite.core.errors import InputError
from clipsuite.generative.names import strength_problem

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel


class DeltaMapper(nn.Module):
    """``[c, delta_c]`` (``2 * clip_dim``) -> ``delta_e`` (``code_dim``). ``delta_scale`` is the mean
    length of the training image deltas (text deltas are scaled to it at inference)."""

    delta_scale: torch.Tensor   # registered buffer

    def __init__(self, clip_dim: int, code_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.clip_dim, self.code_dim, self.hidden = clip_dim, code_dim, hidden
        self.net = nn.Sequential(nn.Linear(2 * clip_dim, hidden), nn.LayerNorm(hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.GELU(),
                                 nn.Linear(hidden, code_dim))
        self.register_buffer("delta_scale", torch.tensor(1.0))

    def forward(self, c: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([c, delta], dim=-1))

    def config(self) -> dict[str, Any]:
        return {"clip_dim": self.clip_dim, "code_dim": self.code_dim, "hidden": self.hidden}


def embed_images(clip: ClipModel, images: Sequence[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised CLIP image embeddings ``c``, generator conditioning codes ``e``) of PIL images,
    one pass of the frozen encoder."""
    codes = clip.encode_images(list(images), normalize=False)
    return F.normalize(codes, dim=-1), codes


class PairDeltas(torch.utils.data.Dataset):
    """All ordered pairs ``(i, j)``, ``i != j``, of precomputed embeddings, as mapper samples."""

    def __init__(self, c: torch.Tensor, e: torch.Tensor) -> None:
        if len(c) < 2 or len(c) != len(e):
            raise InputError(f"DeltaSpace training needs at least 2 images with codes (got {len(c)} and {len(e)})")
        self.c, self.e = c.float(), e.float()
        n = len(c)
        self.pairs = [(i, j) for i in range(n) for j in range(n) if i != j]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i, j = self.pairs[index]
        return {"c": self.c[i], "delta_c": self.c[j] - self.c[i], "delta_e": self.e[j] - self.e[i]}

    def mean_delta_norm(self) -> float:
        return float(torch.stack([(self.c[j] - self.c[i]).norm() for i, j in self.pairs]).mean())


class DeltaTask:
    """The core Trainer task: L2 + ``cos_weight`` * (1 - cos) between predicted and true code deltas."""

    clip_identity: dict[str, str] | None = None  # the CLIP whose embeddings it maps (part_files.check_clip)

    def __init__(self, mapper: DeltaMapper, cos_weight: float = 1.0) -> None:
        self.module, self.cos_weight = mapper, cos_weight

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pred = self.module(batch["c"], batch["delta_c"])
        l2 = F.mse_loss(pred, batch["delta_e"])
        cos = (1 - F.cosine_similarity(pred, batch["delta_e"], dim=-1)).mean()
        return {"loss": l2 + self.cos_weight * cos, "l2": l2.detach(), "cos": cos.detach()}

    def config(self) -> dict[str, Any]:
        return {"stage": "delta", **self.module.config(), "cos_weight": self.cos_weight}


def text_delta(clip: ClipModel, target: str, neutral: str, scale: float) -> torch.Tensor:
    """``normalise(T(target) - T(neutral)) * scale`` ``[clip_dim]``: the edit direction in CLIP space."""
    if not target.strip() or not neutral.strip():
        raise InputError("an edit needs a non-empty target prompt and neutral prompt")
    t = clip.encode_texts([target, neutral])
    delta = t[0] - t[1]
    if float(delta.norm()) < 1e-6:
        raise InputError(f"'{target}' and '{neutral}' give the same CLIP text embedding: no edit direction")
    return F.normalize(delta, dim=-1) * scale


@torch.no_grad()
def edit_codes(mapper: DeltaMapper, c: torch.Tensor, e: torch.Tensor, delta: torch.Tensor,
               strength: float) -> torch.Tensor:
    """``e + strength * mapper(c, delta)`` for each image; ``strength`` in ``names.EDIT_STRENGTH``, 0 returns
    ``e`` itself."""
    problem = strength_problem(strength)
    if problem:
        raise InputError(problem)
    if strength == 0:
        return e.clone()
    return e + strength * mapper(c, delta.expand_as(c).to(c.dtype))
