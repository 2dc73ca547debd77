"""Few-shot patch memory (PatchCore-style) on CLIP patch tokens: no text needed.

Features: intermediate ViT patch tokens from a few middle blocks, each L2-normalised, averaged over a
3x3 patch neighbourhood (local context, as PatchCore) and concatenated. The memory holds the normal
references' patches, optionally subsampled by greedy k-center coreset. Patch score = distance to the
nearest memory patch; image score = max of the patch map; map upsampled and Gaussian-smoothed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F

from clipsuite.anomaly.methods.base import AnomalyResult, MethodSetup, References, gaussian_smooth, upsample
from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel
from clipsuite.core.towers import vision_tower


def default_layers(depth: int) -> tuple[int, ...]:
    """Middle blocks (PatchCore uses mid-level features): e.g. 12 -> (5, 8), 4 -> (1, 2)."""
    return tuple(sorted({max(0, depth // 2 - 1), max(0, (3 * depth) // 4 - 1)}))


def greedy_coreset(features: torch.Tensor, size: int, projection_dim: int = 128, seed: int = 0) -> torch.Tensor:
    """Indices of ``size`` rows chosen by greedy k-center on a random projection (PatchCore)."""
    n = features.shape[0]
    if size >= n:
        return torch.arange(n, device=features.device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    if features.shape[1] > projection_dim:
        matrix = torch.randn(features.shape[1], projection_dim, generator=generator).to(features)
        reduced = features @ matrix
    else:
        reduced = features
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    distance = torch.cdist(reduced, reduced[chosen[-1]:chosen[-1] + 1]).squeeze(1)
    for _ in range(size - 1):
        chosen.append(int(distance.argmax()))
        distance = torch.minimum(distance, torch.cdist(reduced, reduced[chosen[-1]:chosen[-1] + 1]).squeeze(1))
    return torch.tensor(chosen, device=features.device)


class PatchMemory:
    name = "patch_memory"
    references: ClassVar[References] = "required"  # the memory is built from normal references
    trained: ClassVar[bool] = False

    @classmethod
    def build(cls, clip: ClipModel, setup: MethodSetup) -> PatchMemory:
        return cls(clip, smoothing_sigma=4.0 if setup.smoothing_sigma is None else setup.smoothing_sigma)

    def __init__(self, clip: ClipModel, layers: Sequence[int] | None = None, coreset_ratio: float = 1.0,
                 neighbourhood: int | None = None, smoothing_sigma: float = 4.0, chunk: int = 4096) -> None:
        tower = vision_tower(clip)
        self.clip = clip
        self.width = tower.width
        depth = tower.depth
        self.layers = tuple(layers) if layers else default_layers(depth)
        self.coreset_ratio = coreset_ratio
        # 3x3 context helps on fine grids (PatchCore's 28x28); on coarse grids it blurs defects away
        self.neighbourhood = neighbourhood if neighbourhood is not None else (3 if min(clip.patch_grid) >= 14 else 1)
        self.smoothing_sigma = smoothing_sigma
        self.chunk = chunk
        self.memory: torch.Tensor | None = None

    @torch.no_grad()
    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, P, D]`` normalised, neighbourhood-averaged, layer-concatenated patch features."""
        tokens = self.clip.dense_features(pixels, self.layers, project=False)
        height, width = self.clip.patch_grid
        parts = []
        for t in tokens:
            grid = F.normalize(t, dim=-1).transpose(1, 2).reshape(t.shape[0], -1, height, width)
            if self.neighbourhood > 1:
                grid = F.avg_pool2d(grid, self.neighbourhood, stride=1, padding=self.neighbourhood // 2,
                                    count_include_pad=False)
            parts.append(F.normalize(grid.flatten(2).transpose(1, 2), dim=-1))
        return torch.cat(parts, dim=-1) / len(parts) ** 0.5

    @torch.no_grad()
    def fit(self, reference_pixels: torch.Tensor) -> PatchMemory:
        if reference_pixels.ndim != 4 or reference_pixels.shape[0] == 0:
            raise InputError("patch memory needs at least one normal reference image")
        memory = self.features(reference_pixels).reshape(-1, self._dim())
        if self.coreset_ratio < 1.0:
            memory = memory[greedy_coreset(memory, max(1, int(len(memory) * self.coreset_ratio)))]
        self.memory = memory
        return self

    def _dim(self) -> int:
        return self.width * len(self.layers)

    @torch.no_grad()
    def predict(self, pixels: torch.Tensor) -> AnomalyResult:
        if self.memory is None:
            raise InputError("patch memory: call fit() with normal reference images first (--reference DIR)")
        queries = self.features(pixels)
        batch, _, dim = queries.shape
        flat = queries.reshape(-1, dim)
        nearest = torch.cat([torch.cdist(flat[i:i + self.chunk], self.memory).amin(dim=1)
                             for i in range(0, flat.shape[0], self.chunk)])
        height, width = self.clip.patch_grid
        patch_map = nearest.reshape(batch, height, width)
        maps = upsample(patch_map, (pixels.shape[-2], pixels.shape[-1]))
        if self.smoothing_sigma > 0:
            maps = gaussian_smooth(maps, self.smoothing_sigma * pixels.shape[-1] / 240)
        return AnomalyResult(patch_map.flatten(1).amax(dim=1), maps)
