"""AnomalyCLIP (Zhou et al., ICLR 2024): object-agnostic learnable prompts + DPAM patch features.

Trained once on an auxiliary dataset with masks, then applied zero-shot to other objects. As the
reference code runs it: patch features from several layers (``features``, its ``features_list``,
default the quarter-depth layers) taken from the DPAM v-v path (``dpam_layer``, its ``DPAM_layer``:
the last ``dpam_layer - 1`` blocks; 1 turns DPAM off). Map = sum over the layers of (anomalous + 1 -
normal) / 2 of the per-patch softmax, upsampled and Gaussian-smoothed (sigma 4 at 518 px, scaled to the
input size). Image score (``image_score``): by default the mean of the global score softmax(cos(image,
[normal, anomalous]) / 0.07)[anomalous] and the map's maximum per layer; ``global`` is the reference
test.py's (on a small backbone the global score alone transfers poorly, docs/anomaly.md).
Loss = CE(image) + ``seg_weight`` (the reference's lam = 4) x the sum over the layers of focal(map) +
dice(anomalous, mask) + dice(normal, 1 - mask); Adam with betas (0.5, 0.999) as the reference.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from clipsuite.anomaly.methods.base import AnomalyResult, MethodSetup, References, gaussian_smooth, upsample
from clipsuite.anomaly.methods.dpam import check_layers, default_dpam_layer, default_features, encode_with_dpam
from clipsuite.anomaly.methods.learned import load_learned
from clipsuite.anomaly.methods.text_prompts import PromptTextEncoder
from clipsuite.core.errors import InputError
from clipsuite.core.losses import dice_loss, focal_loss
from clipsuite.core.models import ClipModel
from clipsuite.core.towers import text_tower, vision_tower

TEMPERATURE = 0.07
IMAGE_SCORES = ("global", "max", "global+max")


def combine_image_score(mode: str, global_prob: torch.Tensor, maps: torch.Tensor, n_layers: int) -> torch.Tensor:
    """``global``: the reference test.py's softmax probability of the anomalous prompt on the image
    embedding; ``max``: the smoothed map's maximum (divided by the number of layers, so in [0, 1]);
    ``global+max``: their mean, the local evidence added to the global one (scores stay in [0, 1])."""
    peak = maps.flatten(1).max(dim=1).values / n_layers
    return {"global": global_prob, "max": peak, "global+max": (global_prob + peak) / 2}[mode]


class AnomalyClip(nn.Module):
    name = "anomalyclip"
    references: ClassVar[References] = "unused"  # object-agnostic prompts, applied zero-shot
    trained: ClassVar[bool] = True
    adam_betas: ClassVar[tuple[float, float]] = (0.5, 0.999)  # the reference's optimizer

    @classmethod
    def build(cls, clip: ClipModel, setup: MethodSetup) -> AnomalyClip:
        return cast(AnomalyClip, load_learned(clip, cls.name, setup.weights, setup.smoothing_sigma))  # cls's own

    def __init__(self, clip: ClipModel, n_ctx: int = 12, deep_depth: int = 9, deep_length: int = 4,
                 features: list[int] | None = None, dpam_layer: int | None = None,
                 smoothing_sigma: float = 4.0, image_score: str = "global+max", seg_weight: float = 4.0) -> None:
        super().__init__()
        self.tower = vision_tower(clip)
        self.clip = clip
        depth, text_depth = self.tower.depth, text_tower(clip).depth
        features = sorted(set(features)) if features else list(default_features(depth))
        dpam_layer = default_dpam_layer(depth) if dpam_layer is None else dpam_layer
        check_layers(depth, features, dpam_layer)
        if image_score not in IMAGE_SCORES:
            raise InputError(f"image_score must be one of {', '.join(IMAGE_SCORES)} (got {image_score!r})")
        self.settings: dict[str, Any] = {"n_ctx": n_ctx, "deep_depth": min(deep_depth, text_depth),
                                         "deep_length": deep_length, "features": features,
                                         "dpam_layer": dpam_layer, "smoothing_sigma": smoothing_sigma,
                                         "image_score": image_score, "seg_weight": seg_weight}
        self.prompts = PromptTextEncoder(clip, n_ctx, self.settings["deep_depth"], deep_length).to(clip.device)
        clip.freeze()

    def set_class(self, class_name: str) -> None:
        """Object-agnostic: the class name is not used."""

    def logits(self, pixels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Image logits ``[B, 2]`` and, per feature layer, patch logits ``[B, 2, h, w]`` (normal, anomalous)."""
        pixels = pixels.to(self.clip.device)
        with self.clip.autocast():
            image, layers = encode_with_dpam(self.tower, pixels, self.settings["features"],
                                             self.settings["dpam_layer"])
            text = self.prompts()
        text = F.normalize(text.float(), dim=-1)
        image_logits = F.normalize(image.float(), dim=-1) @ text.T / TEMPERATURE
        height, width = self.tower.grid_for(pixels)
        maps = [(F.normalize(p.float(), dim=-1) @ text.T / TEMPERATURE).transpose(1, 2).reshape(-1, 2, height, width)
                for p in layers]
        return image_logits, maps

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image_logits, layer_logits = self.logits(batch["pixels"])
        masks = batch["mask"].to(image_logits.device)
        ce = F.cross_entropy(image_logits, batch["label"].to(image_logits.device).long())
        focal = dice = image_logits.new_zeros(())
        for patch_logits in layer_logits:  # the reference sums the segmentation losses over the layers
            logits = F.interpolate(patch_logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
            probs = logits.softmax(dim=1)
            focal = focal + focal_loss(logits, (masks > 0.5).long())
            dice = dice + dice_loss(probs[:, 1], masks) + dice_loss(probs[:, 0], 1 - masks)
        seg = self.settings["seg_weight"] * (focal + dice)  # the reference's lam = 4
        return {"loss": ce + seg, "image_ce": ce.detach(), "focal": focal.detach(), "dice": dice.detach()}

    @torch.no_grad()
    def predict(self, pixels: torch.Tensor) -> AnomalyResult:
        image_logits, layer_logits = self.logits(pixels)
        maps = image_logits.new_zeros(pixels.shape[0], *pixels.shape[-2:])
        for patch_logits in layer_logits:  # the reference sums the layers' maps
            probs = upsample(patch_logits.softmax(dim=1).flatten(0, 1), (pixels.shape[-2], pixels.shape[-1]))
            probs = probs.view(pixels.shape[0], 2, *pixels.shape[-2:])
            maps = maps + (probs[:, 1] + 1 - probs[:, 0]) / 2
        sigma = self.settings["smoothing_sigma"] * pixels.shape[-1] / 518
        maps = gaussian_smooth(maps, sigma)
        return AnomalyResult(combine_image_score(self.settings["image_score"], image_logits.softmax(-1)[:, 1],
                                         maps, len(layer_logits)), maps)

    def learned_state(self) -> dict[str, torch.Tensor]:
        return {f"prompts.{k}": v for k, v in self.prompts.state_dict().items()}
