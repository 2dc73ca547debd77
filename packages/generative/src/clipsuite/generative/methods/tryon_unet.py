"""The LaDI-VTON try-on UNet: a diffusers inpainting UNet with ``conv_in`` widened for the try-on
conditions.

Input channels, in order: noisy latent (4), repaint mask (1), masked-person latent (4) -- the
inpainting UNet's own 9 -- then pose heatmaps (18) and the warped-garment latent (4): 31 for SD.
The new input weights start at zero and the old ones are copied, so before training the widened UNet
computes exactly what the inpainting UNet computed; the shape change is recorded in the model's
config with ``register_to_config`` so ``save``/``from_config`` rebuild it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel  # not `from diffusers`: mypy sees its dummies
from torch import nn

from clipsuite.core.errors import ModelError

Pair = tuple[int, int]
POSE_CHANNELS = 18
INPAINT_CHANNELS = 9


@dataclass
class TryOnConditions:
    """Conditions at latent resolution, ``[B, C, h, w]``; any may be None (classifier-free: zeros)."""

    mask: torch.Tensor
    masked_latent: torch.Tensor
    pose: torch.Tensor | None = None
    cloth_latent: torch.Tensor | None = None

    def drop(self, keep: dict[str, torch.Tensor]) -> TryOnConditions:
        """Zero each condition where ``keep[name]`` (``[B]`` of 0/1) is 0: classifier-free dropout."""
        def gate(name: str, value: torch.Tensor | None) -> torch.Tensor | None:
            if value is None or name not in keep:
                return value
            return value * keep[name].to(value.dtype).view(-1, *([1] * (value.dim() - 1)))
        return TryOnConditions(self.mask, self.masked_latent, gate("pose", self.pose),
                               gate("cloth_latent", self.cloth_latent))


def widen_conv_in(unet: UNet2DConditionModel, extra: int) -> UNet2DConditionModel:
    """Add ``extra`` zero-initialised input channels to ``unet.conv_in`` in place; returns ``unet``."""
    old = unet.conv_in
    # torch types a conv's kernel_size / stride / padding as tuple[int, ...]; a Conv2d's are pairs
    new = nn.Conv2d(old.in_channels + extra, old.out_channels, kernel_size=cast(Pair, old.kernel_size),
                    stride=cast(Pair, old.stride), padding=cast("str | Pair", old.padding), device=old.weight.device,
                    dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :old.in_channels] = old.weight
        assert old.bias is not None and new.bias is not None
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=old.in_channels + extra)
    return unet


def latent_pose(heatmaps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pose heatmaps at pixel resolution -> latent resolution (area average keeps each peak's mass)."""
    return F.adaptive_avg_pool2d(heatmaps, size) if heatmaps.shape[-2:] != size else heatmaps


class TryOnUNet(nn.Module):
    """The widened UNet and the rule that lays its conditions out as channels."""

    def __init__(self, unet: UNet2DConditionModel, latent_channels: int = 4) -> None:
        super().__init__()
        expected = INPAINT_CHANNELS + POSE_CHANNELS + latent_channels
        if unet.config["in_channels"] == INPAINT_CHANNELS:
            widen_conv_in(unet, POSE_CHANNELS + latent_channels)
        elif unet.config["in_channels"] != expected:
            raise ModelError(f"try-on UNet: conv_in takes {unet.config['in_channels']} channels; expected an "
                             f"inpainting UNet ({INPAINT_CHANNELS}) or a try-on UNet ({expected})")
        self.unet = unet
        self.latent_channels = latent_channels

    def layout(self, noisy: torch.Tensor, cond: TryOnConditions) -> torch.Tensor:
        b, _, h, w = noisy.shape
        zeros = noisy.new_zeros
        pose = latent_pose(cond.pose, (h, w)) if cond.pose is not None else zeros(b, POSE_CHANNELS, h, w)
        cloth = cond.cloth_latent if cond.cloth_latent is not None else zeros(b, self.latent_channels, h, w)
        return torch.cat([noisy, cond.mask, cond.masked_latent, pose.to(noisy.dtype), cloth], dim=1)

    def forward(self, noisy: torch.Tensor, timestep: torch.Tensor | int, text_states: torch.Tensor,
                cond: TryOnConditions) -> torch.Tensor:
        return self.unet(self.layout(noisy, cond), timestep, encoder_hidden_states=text_states).sample
