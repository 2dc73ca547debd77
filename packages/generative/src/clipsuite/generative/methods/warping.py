"""Garment warping: a thin-plate-spline regressed from feature correlation, then a refinement net.

As in CP-VTON / LaDI-VTON: two small encoders embed the person representation (masked person +
pose heatmaps) and the flat garment; their normalised features are correlated at every pair of
locations; a regressor turns the correlation into offsets of a ``G x G`` grid of TPS control points;
the TPS sampling grid warps the garment onto the body. A refinement U-Net then corrects what a TPS
cannot express (it sees the warped garment and the person representation and predicts a residual;
its last conv starts at zero, so before training it passes the TPS result through).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


def _tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r^2, with U(0) = 0."""
    return torch.where(r2 > 0, r2 * torch.log(r2.clamp_min(1e-12)), torch.zeros_like(r2))


class TPSGrid(nn.Module):
    """Sampling grid from displaced control points. Control points start on a regular ``G x G`` grid
    over [-1, 1]^2; ``forward(targets)`` gives the grid for ``grid_sample`` (``align_corners=False``)
    of the TPS that maps each base point to its target. Zero displacement is the identity."""

    base: torch.Tensor      # registered buffers
    weights: torch.Tensor

    def __init__(self, grid_points: int, size: tuple[int, int]) -> None:
        super().__init__()
        axis = torch.linspace(-1, 1, grid_points)
        base = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2)  # (x, y)
        n = len(base)
        system = torch.zeros(n + 3, n + 3, dtype=torch.float64)
        system[:n, :n] = _tps_kernel(torch.cdist(base, base).double() ** 2)
        system[:n, n] = 1
        system[:n, n + 1:] = base.double()
        system[n, :n] = 1
        system[n + 1:, :n] = base.double().T
        h, w = size
        ys = (2 * torch.arange(h) + 1) / h - 1  # pixel centres, as align_corners=False places them
        xs = (2 * torch.arange(w) + 1) / w - 1
        pixels = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
        design = torch.cat([_tps_kernel(torch.cdist(pixels, base) ** 2), torch.ones(len(pixels), 1), pixels], dim=1)
        # the right-hand side is [targets; 0], so only the first n columns of the inverse matter:
        # grid = design @ inverse[:, :n] @ targets, one [H*W, n] matrix computed once in float64
        weights = design.double() @ torch.linalg.inv(system)[:, :n]
        self.register_buffer("base", base, persistent=False)
        self.register_buffer("weights", weights.float(), persistent=False)
        self.size = size

    def forward(self, targets: torch.Tensor) -> torch.Tensor:
        """``targets`` ``[B, G*G, 2]`` -> grid ``[B, H, W, 2]``."""
        return (self.weights @ targets).view(targets.shape[0], *self.size, 2)


def _encoder(in_channels: int, width: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = in_channels
    for k in range(depth):
        out = width * 2 ** min(k, 2)
        layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.GroupNorm(min(8, out), out), nn.ReLU()]
        channels = out
    return nn.Sequential(*layers)


class TPSWarper(nn.Module):
    """Garment + person representation -> TPS-warped garment (and its grid)."""

    def __init__(self, size: tuple[int, int], person_channels: int = 3 + 18, width: int = 16, depth: int = 3,
                 grid_points: int = 5) -> None:
        super().__init__()
        self.person_encoder = _encoder(person_channels, width, depth)
        self.cloth_encoder = _encoder(3, width, depth)
        fh, fw = size[0] // 2**depth, size[1] // 2**depth
        self.regressor = nn.Sequential(
            nn.Conv2d(fh * fw, 64, 3, padding=1), nn.GroupNorm(8, 64), nn.ReLU(),
            nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(), nn.Linear(256, 2 * grid_points**2))
        head = cast(nn.Linear, self.regressor[-1])
        nn.init.zeros_(head.weight)   # start from the identity warp
        nn.init.zeros_(head.bias)
        self.tps = TPSGrid(grid_points, size)

    def forward(self, cloth: torch.Tensor, person: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = F.normalize(self.person_encoder(person), dim=1)
        b = F.normalize(self.cloth_encoder(cloth), dim=1)
        n, c, h, w = a.shape
        # correlation[n, cloth location, y, x] = <person feature at (y, x), cloth feature at location>
        corr = torch.einsum("nchw,ncl->nlhw", a, b.flatten(2))
        offsets = torch.tanh(self.regressor(F.relu(corr))).view(n, -1, 2)
        grid = self.tps(self.tps.base + offsets)
        return F.grid_sample(cloth, grid, mode="bilinear", padding_mode="border", align_corners=False), grid


class RefineNet(nn.Module):
    """A small U-Net: [warped garment, person representation] -> residual on the warped garment."""

    def __init__(self, in_channels: int = 3 + 3 + 18, width: int = 32) -> None:
        super().__init__()
        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU())
        self.down1, self.down2 = block(in_channels, width), block(width, 2 * width)
        self.mid = block(2 * width, 2 * width)
        self.up = block(4 * width, width)
        self.out = nn.Conv2d(2 * width, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(cast(torch.Tensor, self.out.bias))   # Conv2d's bias is Optional; built with one

    def forward(self, warped: torch.Tensor, person: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(torch.cat([warped, person], dim=1))
        d2 = self.down2(F.avg_pool2d(d1, 2))
        m = self.mid(d2)
        u = F.interpolate(self.up(torch.cat([m, d2], dim=1)), size=d1.shape[-2:], mode="nearest")
        return warped + self.out(torch.cat([u, d1], dim=1))


class GarmentWarper(nn.Module):
    """TPS warp then refinement; ``person`` is the masked person image and pose heatmaps (3 + 18)."""

    def __init__(self, size: tuple[int, int], grid_points: int = 5) -> None:
        super().__init__()
        self.size = tuple(size)
        self.tps = TPSWarper(size, grid_points=grid_points)
        self.refine = RefineNet()

    def forward(self, cloth: torch.Tensor, masked_person: torch.Tensor, pose: torch.Tensor,
                ) -> dict[str, torch.Tensor]:
        person = torch.cat([masked_person, pose], dim=1)
        warped, grid = self.tps(cloth, person)
        return {"tps": warped, "refined": self.refine(warped, person), "grid": grid}
