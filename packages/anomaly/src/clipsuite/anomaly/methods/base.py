"""What every anomaly method returns, plus the shared post-processing (upsampling, smoothing).

A method is any object with ``predict(pixels) -> AnomalyResult``; few-shot methods also take
``fit(reference_pixels)``. Pixels are the CLIP-preprocessed tensor ``[B, 3, S, S]``; maps come back at
``S x S`` and the caller resizes them to each original image (``resize_map``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F


@dataclass
class AnomalyResult:
    """Image scores ``[B]`` and anomaly maps ``[B, H, W]`` (float32, CPU or the model's device)."""

    scores: torch.Tensor
    maps: torch.Tensor

    def cpu(self) -> AnomalyResult:
        return AnomalyResult(self.scores.detach().float().cpu(), self.maps.detach().float().cpu())

    @staticmethod
    def cat(results: list[AnomalyResult]) -> AnomalyResult:
        return AnomalyResult(torch.cat([r.scores for r in results]), torch.cat([r.maps for r in results]))


@runtime_checkable
class AnomalyMethod(Protocol):
    name: str

    def predict(self, pixels: torch.Tensor) -> AnomalyResult: ...


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, h, w]`` -> ``[B, H, W]`` bilinear (WinCLIP / anomalib: align_corners False)."""
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def gaussian_smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[B, H, W]`` maps, kernel radius 4 sigma, reflect padding."""
    if sigma <= 0:
        return maps
    radius = max(1, math.ceil(4 * sigma))
    coords = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-0.5 * (coords / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = maps.unsqueeze(1)
    pad_h = min(radius, x.shape[-2] - 1)
    pad_w = min(radius, x.shape[-1] - 1)
    x = F.pad(x, (pad_w, pad_w, 0, 0), mode="reflect") if pad_w else x
    x = F.conv2d(x, kernel[radius - pad_w:radius + pad_w + 1].view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, pad_h, pad_h), mode="reflect") if pad_h else x
    x = F.conv2d(x, kernel[radius - pad_h:radius + pad_h + 1].view(1, 1, -1, 1))
    return x.squeeze(1)


def resize_map(anomaly_map: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One ``[h, w]`` map -> ``[H, W]`` (an original image's height and width)."""
    if tuple(anomaly_map.shape[-2:]) == tuple(size):
        return anomaly_map
    return upsample(anomaly_map.unsqueeze(0), size)[0]
