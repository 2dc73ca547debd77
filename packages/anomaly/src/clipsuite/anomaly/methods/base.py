"""What an anomaly method is and returns, the registry that finds one by name, and the shared
post-processing (upsampling, smoothing).

A method is a class declared as an entry point of the group ``clipsuite.anomaly_methods`` (this package
declares WinCLIP, patch memory, AnomalyCLIP and AdaptCLIP; another package can add one the same way).
The class says what it needs as class attributes (``AnomalyMethod``), so the pipeline asks the method,
never its name. Pixels are the CLIP-preprocessed tensor ``[B, 3, S, S]``; maps come back at ``S x S``
and the caller resizes them to each original image (``resize_map``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, cast

import torch
import torch.nn.functional as F

from clipsuite.core.plugins import Registry

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel

References = Literal["unused", "optional", "required"]


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


@dataclass(frozen=True)
class MethodSetup:
    """What a caller knows when it builds a method: the object's name for text prompts, the weights file
    of a trained method, and a smoothing sigma (``None``: the method's own default)."""

    class_name: str = "object"
    weights: Path | None = None
    smoothing_sigma: float | None = None


class AnomalyMethod(Protocol):
    """The contract of a registered method class.

    ``references``: normal reference images are ``unused``, ``optional`` (they add a few-shot branch,
    as in WinCLIP+) or ``required``; a method that takes them has ``fit(reference_pixels)``.
    ``trained``: the learned parts come from a weights file written by ``train`` (``MethodSetup.weights``).
    A method whose text prompts name the object also has ``set_class(name)``.
    """

    name: ClassVar[str]
    references: ClassVar[References]
    trained: ClassVar[bool]

    @classmethod
    def build(cls, clip: ClipModel, setup: MethodSetup) -> AnomalyMethod: ...

    def predict(self, pixels: torch.Tensor) -> AnomalyResult: ...


CONTRACT = ("name", "references", "trained", "build", "predict")


def _is_method_class(value: Any) -> bool:
    return (isinstance(value, type) and all(hasattr(value, a) for a in CONTRACT)
            and cast(type[AnomalyMethod], value).references in ("unused", "optional", "required"))


REGISTRY: Registry[type[AnomalyMethod]] = Registry(
    "clipsuite.anomaly_methods", "anomaly method", _is_method_class,
    "a class with " + ", ".join(CONTRACT) + " (clipsuite.anomaly.methods.base.AnomalyMethod)")


def method_class(name: str) -> type[AnomalyMethod]:
    """The installed method class ``name``; an unknown name lists the installed ones."""
    return REGISTRY.get(name)


def method_names(trained: bool | None = None) -> list[str]:
    """Installed method names; ``trained`` True/False keeps only methods that do / do not need training
    (this imports the declaring modules; without the filter only metadata is read)."""
    if trained is None:
        return REGISTRY.names()
    return [name for name, cls in REGISTRY.load_all().items() if cls.trained == trained]


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
