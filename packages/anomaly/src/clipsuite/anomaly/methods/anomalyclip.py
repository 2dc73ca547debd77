"""AnomalyCLIP (Zhou et al., ICLR 2024): object-agnostic learnable prompts + DPAM patch features.

Trained once on an auxiliary dataset with masks, then applied zero-shot to other objects. Image score
= softmax(cos(image, [normal, anomalous]) / 0.07)[anomalous]; map = (anomalous + 1 - normal) / 2 of the
per-patch softmax, upsampled and Gaussian-smoothed (sigma 4 at 518 px, scaled to the input size).
Loss = CE(image) + focal(map) + dice(anomalous, mask) + dice(normal, 1 - mask).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from clipsuite.anomaly.methods.base import AnomalyResult, MethodSetup, References, gaussian_smooth, upsample
from clipsuite.anomaly.methods.dpam import dpam_start, encode_with_dpam
from clipsuite.anomaly.methods.learned import load_learned
from clipsuite.anomaly.methods.text_prompts import PromptTextEncoder
from clipsuite.core.losses import dice_loss, focal_loss
from clipsuite.core.models import ClipModel
from clipsuite.core.towers import text_tower, vision_tower

TEMPERATURE = 0.07


class AnomalyClip(nn.Module):
    name = "anomalyclip"
    references: ClassVar[References] = "unused"  # object-agnostic prompts, applied zero-shot
    trained: ClassVar[bool] = True

    @classmethod
    def build(cls, clip: ClipModel, setup: MethodSetup) -> AnomalyClip:
        return load_learned(clip, cls.name, setup.weights, setup.smoothing_sigma)

    def __init__(self, clip: ClipModel, n_ctx: int = 12, deep_depth: int = 9, deep_length: int = 4,
                 dpam_from: int | None = None, smoothing_sigma: float = 4.0) -> None:
        super().__init__()
        self.tower = vision_tower(clip)
        self.clip = clip
        depth, text_depth = self.tower.depth, text_tower(clip).depth
        self.settings: dict[str, Any] = {"n_ctx": n_ctx, "deep_depth": min(deep_depth, text_depth),
                                         "deep_length": deep_length,
                                         "dpam_from": dpam_start(depth) if dpam_from is None else dpam_from,
                                         "smoothing_sigma": smoothing_sigma}
        self.prompts = PromptTextEncoder(clip, n_ctx, self.settings["deep_depth"], deep_length).to(clip.device)
        clip.model.requires_grad_(False)

    def set_class(self, class_name: str) -> None:
        """Object-agnostic: the class name is not used."""

    def logits(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image logits ``[B, 2]`` and patch logits ``[B, 2, h, w]`` (normal, anomalous)."""
        with self.clip.autocast():
            image, patches = encode_with_dpam(self.tower, pixels.to(self.clip.device), self.settings["dpam_from"])
            text = self.prompts()
        text = F.normalize(text.float(), dim=-1)
        image_logits = F.normalize(image.float(), dim=-1) @ text.T / TEMPERATURE
        patch_logits = F.normalize(patches.float(), dim=-1) @ text.T / TEMPERATURE
        height, width = self.clip.patch_grid
        return image_logits, patch_logits.transpose(1, 2).reshape(-1, 2, height, width)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image_logits, patch_logits = self.logits(batch["pixels"])
        masks = batch["mask"].to(patch_logits.device)
        logits = F.interpolate(patch_logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
        probs = logits.softmax(dim=1)
        ce = F.cross_entropy(image_logits, batch["label"].to(image_logits.device).long())
        focal = focal_loss(logits, (masks > 0.5).long())
        dice = dice_loss(probs[:, 1], masks) + dice_loss(probs[:, 0], 1 - masks)
        return {"loss": ce + focal + dice, "image_ce": ce.detach(), "focal": focal.detach(), "dice": dice.detach()}

    @torch.no_grad()
    def predict(self, pixels: torch.Tensor) -> AnomalyResult:
        image_logits, patch_logits = self.logits(pixels)
        probs = upsample(patch_logits.softmax(dim=1).flatten(0, 1), tuple(pixels.shape[-2:]))
        probs = probs.view(pixels.shape[0], 2, *pixels.shape[-2:])
        maps = (probs[:, 1] + 1 - probs[:, 0]) / 2
        sigma = self.settings["smoothing_sigma"] * pixels.shape[-1] / 518
        return AnomalyResult(image_logits.softmax(-1)[:, 1], gaussian_smooth(maps, sigma))

    def learned_state(self) -> dict[str, torch.Tensor]:
        return {f"prompts.{k}": v for k, v in self.prompts.state_dict().items()}
