"""A patch embedding for N input bands built from the RGB filters (multispectral input).

Two rules, each scaled so the activations keep their size:

* ``repeat`` (N >= 3): band ``b`` gets the filter of RGB channel ``b % 3``, divided by the number of
  bands that share that filter. For N a multiple of 3 this is timm's ``adapt_input_conv`` (repeat,
  times 3/N); for any N an input whose band ``b`` is RGB channel ``b % 3`` gives the RGB activations
  (timm's plain 3/N would weigh R 5/13 and G, B 4/13 each at N = 13).
* ``average`` (any N): every band gets the mean of the RGB filters times 3/N, so an input with the
  same image in every band (a grey image) gives the RGB model's activations on that grey image. At
  N = 1 this is timm's sum of the filters.
"""

from __future__ import annotations

from typing import Literal

import torch

from clipsuite.core.errors import ModelError

BandRule = Literal["repeat", "average"]
BAND_RULES: tuple[str, ...] = ("repeat", "average")


def band_weights(rgb: torch.Tensor, n_bands: int, rule: str = "repeat") -> torch.Tensor:
    """Conv weights ``[out, 3, kh, kw]`` -> ``[out, n_bands, kh, kw]`` by ``rule``."""
    if rgb.shape[1] != 3:
        raise ModelError(f"band adaptation starts from RGB filters; this patch embedding takes {rgb.shape[1]} bands")
    if n_bands < 1:
        raise ModelError(f"number of input bands must be at least 1, got {n_bands}")
    if rule == "repeat":
        if n_bands < 3:
            raise ModelError(f"the 'repeat' band rule needs at least 3 bands (got {n_bands}); use 'average'")
        source = torch.arange(n_bands) % 3
        shares = torch.bincount(source, minlength=3)[source].to(rgb.dtype)  # bands per RGB filter
        return rgb[:, source] / shares.view(1, -1, 1, 1)
    if rule == "average":
        return rgb.mean(dim=1, keepdim=True).expand(-1, n_bands, -1, -1) * (3.0 / n_bands)
    raise ModelError(f"unknown band rule '{rule}' (choose from {', '.join(BAND_RULES)})")


def adapt_conv(conv: torch.nn.Conv2d, n_bands: int, rule: str = "repeat") -> None:
    """Give ``conv`` (an RGB patch embedding) ``n_bands`` inputs, in place."""
    with torch.no_grad():
        weight = band_weights(conv.weight.detach(), n_bands, rule).contiguous()
    conv.weight = torch.nn.Parameter(weight, requires_grad=conv.weight.requires_grad)
    conv.in_channels = n_bands
