"""EMASC: Enhanced Mask-Aware Skip Connections from the VAE encoder to its decoder (LaDI-VTON).

The latent autoencoder loses detail (faces, hands, text on clothes) outside the repainted region.
EMASC takes the encoder's intermediate features of the *masked* person, passes each through a
3x3 conv and adds it to the decoder at the same resolution, times ``1 - mask``, so the decoder gets
the real person's detail back where nothing was repainted.

Which encoder feature feeds which decoder block, and the channel counts, follow from the VAE config
(``block_out_channels``): encoder down block ``i`` leaves features at ``1 / 2**min(i + 1, n - 1)`` of
the image size, decoder up block ``j`` reads them at ``1 / 2**(n - 1 - j)``; the full-resolution one
comes from the encoder's ``conv_in``. The convs start at zero, so an untrained EMASC decodes exactly as
the VAE does. Features are captured and added with forward hooks on diffusers' own blocks: the VAE's
code runs unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL  # not `from diffusers`: mypy sees its dummies
from torch import nn


def skip_plan(block_out_channels: Sequence[int]) -> list[tuple[int, int, int, int]]:
    """``(encoder_index, decoder_block, in_channels, out_channels)`` per skip; encoder index -1 is
    ``conv_in``. Derived from the config alone."""
    n = len(block_out_channels)
    reversed_channels = list(reversed(block_out_channels))
    plan = []
    for j in range(n):
        i = n - 1 if j == 0 else n - 2 - j
        enc_channels = block_out_channels[max(i, 0)]
        dec_channels = reversed_channels[max(j - 1, 0)]
        plan.append((i, j, enc_channels, dec_channels))
    return plan


class EMASC(nn.Module):
    def __init__(self, vae_config: Any) -> None:
        super().__init__()
        self.plan = skip_plan(list(vae_config.block_out_channels))
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, 3, padding=1) for _, _, c_in, c_out in self.plan)
        for conv in self.convs:
            nn.init.zeros_(cast(torch.Tensor, conv.weight))   # each is an nn.Conv2d with a bias
            nn.init.zeros_(cast(torch.Tensor, conv.bias))

    @torch.no_grad()
    def encoder_features(self, vae: AutoencoderKL, masked_pixels: torch.Tensor) -> dict[int, torch.Tensor]:
        """The encoder features EMASC needs, keyed by encoder index (one encoder pass, no grad)."""
        wanted = {i for i, *_ in self.plan}
        captured: dict[int, torch.Tensor] = {}
        handles = []

        def keep(index: int) -> Any:
            def hook(_module: nn.Module, _args: Any, output: torch.Tensor) -> None:
                captured[index] = output
            return hook

        encoder = vae.encoder
        if -1 in wanted:
            handles.append(encoder.conv_in.register_forward_hook(keep(-1)))
        for i, block in enumerate(encoder.down_blocks):
            if i in wanted:
                handles.append(block.register_forward_hook(keep(i)))
        try:
            encoder(masked_pixels.to(vae.dtype))
        finally:
            for handle in handles:
                handle.remove()
        return captured

    @contextmanager
    def attached(self, vae: AutoencoderKL, features: dict[int, torch.Tensor], mask: torch.Tensor,
                 ) -> Iterator[None]:
        """While open, ``vae.decode`` adds the skips (``mask``: ``[B, 1, H, W]``, 1 = repainted)."""
        handles = []
        for (i, j, _, _), conv in zip(self.plan, self.convs):
            def hook(_module: nn.Module, args: tuple[Any, ...], i: int = i, conv: nn.Module = conv) -> tuple[Any, ...]:
                hidden = args[0]
                keep = 1 - F.interpolate(mask.to(hidden.dtype), size=hidden.shape[-2:], mode="nearest")
                skip = conv(features[i].to(cast(torch.Tensor, conv.weight).dtype)).to(hidden.dtype)
                return (hidden + skip * keep,) + tuple(args[1:])
            handles.append(vae.decoder.up_blocks[j].register_forward_pre_hook(hook))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def decode(self, vae: AutoencoderKL, latents: torch.Tensor, masked_pixels: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        """Decode ``latents`` (already divided by the VAE's scaling factor) with the skips."""
        features = self.encoder_features(vae, masked_pixels)
        with self.attached(vae, features, mask):
            return vae.decode(latents.to(vae.dtype)).sample
