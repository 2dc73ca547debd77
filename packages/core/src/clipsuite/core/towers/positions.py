"""Position embeddings for another patch grid, resampled as open_clip and timm do on load."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resample_grid(pos: torch.Tensor, prefix: int, old_grid: tuple[int, int], new_grid: tuple[int, int],
                  ) -> torch.Tensor:
    """``[prefix + old_h * old_w, W]`` -> ``[prefix + new_h * new_w, W]``: the prefix (class) rows are
    kept; the grid part is resampled bicubically (antialiased, ``align_corners=False``), in float32
    and cast back. At ``new_grid == old_grid`` the input is returned unchanged."""
    if tuple(new_grid) == tuple(old_grid):
        return pos
    prefix_rows, grid_rows = pos[:prefix], pos[prefix:]
    image = grid_rows.float().reshape(1, old_grid[0], old_grid[1], -1).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=new_grid, mode="bicubic", antialias=True, align_corners=False)
    grid_rows = image.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], -1).to(pos.dtype)
    return torch.cat([prefix_rows, grid_rows], dim=0)
