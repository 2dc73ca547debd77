"""WinCLIP's window geometry on a patch grid: which patches each window holds, and how window scores
spread back to patches. The tower steps that run windows live in ``clipsuite.core.towers``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clipsuite.core.errors import ModelError


def window_indices(grid: tuple[int, int], kernel: int, stride: int = 1) -> torch.Tensor:
    """Patch indices of every ``kernel x kernel`` window, ``[n_windows, kernel**2]``, in the order of
    ``F.unfold`` (the order anomalib's ``make_masks`` uses, transposed)."""
    height, width = grid
    if height < kernel or width < kernel:
        raise ModelError(f"window size {kernel} is larger than the {height}x{width} patch grid")
    ids = torch.arange(height * width, dtype=torch.float32).reshape(1, 1, height, width)
    return F.unfold(ids, kernel_size=kernel, stride=stride)[0].long().T.contiguous()


def window_coverage(indices: torch.Tensor, n_patches: int) -> torch.Tensor:
    """Boolean ``[n_patches, n_windows]``: True where the window covers the patch."""
    cover = torch.zeros(n_patches, indices.shape[0], dtype=torch.bool)
    cover[indices.T.reshape(-1), torch.arange(indices.shape[0]).repeat(indices.shape[1])] = True
    return cover


def harmonic_mean_over_windows(window_scores: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Spread ``[B, n_windows]`` scores to ``[B, n_patches]`` by the harmonic mean of covering windows.

    A zero window score makes the patch score zero (as in anomalib: 1/0 = inf, count/inf = 0); an
    uncovered patch scores zero.
    """
    inverse = torch.where(coverage.unsqueeze(0), (1.0 / window_scores).unsqueeze(1), 0.0).sum(-1)
    return (coverage.sum(dim=1).to(window_scores.dtype) / inverse).nan_to_num(posinf=0.0)
