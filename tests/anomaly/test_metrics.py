from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from clipsuite.anomaly.evaluate import aupro, image_metrics
from clipsuite.anomaly.methods.base import gaussian_smooth
from clipsuite.anomaly.methods.windows import harmonic_mean_over_windows, window_coverage, window_indices


def _brute_force_aupro(masks, maps, limit=0.3):
    """PRO/FPR at every distinct threshold, straight from the definition."""
    regions = []
    for i in range(len(masks)):
        labelled, count = ndimage.label(masks[i])
        regions += [(i, labelled == k) for k in range(1, count + 1)]
    negatives = ~masks
    points = [(0.0, 0.0)]
    for t in np.unique(maps)[::-1]:
        above = maps >= t
        points.append(((above & negatives).sum() / negatives.sum(),
                       np.mean([above[i][region].mean() for i, region in regions])))
    fpr, pro = np.array(points).T
    grid = np.linspace(0, limit, 20001)
    return np.trapezoid(np.interp(grid, fpr, pro), grid) / limit


def test_aupro_matches_definition():
    rng = np.random.default_rng(0)
    masks = np.zeros((3, 16, 16), bool)
    masks[0, 2:6, 2:6] = True
    masks[0, 10:12, 9:15] = True
    masks[1, 5:9, 5:7] = True
    maps = rng.random(masks.shape) + masks * rng.random(masks.shape) * 0.8
    maps = np.round(maps, 2)  # ties
    assert aupro(masks, maps) == pytest.approx(_brute_force_aupro(masks, maps), abs=2e-4)
    assert aupro(masks, masks.astype(float) + 0.01 * maps) == pytest.approx(1.0)


def test_image_metrics_perfect_and_random():
    perfect = image_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert perfect == {"image_auroc": 1.0, "image_ap": 1.0, "image_f1_max": 1.0}
    assert image_metrics([0, 1, 0, 1], [0.5] * 4)["image_auroc"] == 0.5


def test_window_helpers_and_smoothing():
    windows = window_indices((3, 3), 2)
    assert windows.tolist() == [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]
    cover = window_coverage(windows, 9)
    scores = torch.tensor([[1.0, 0.75, 0.5, 0.25]])
    expected = torch.tensor([1.0, 0.8571, 0.75, 0.6667, 0.48, 0.375, 0.5, 0.3333, 0.25])
    torch.testing.assert_close(harmonic_mean_over_windows(scores, cover)[0], expected, atol=1e-4, rtol=0)
    zero = harmonic_mean_over_windows(torch.tensor([[0.0, 1.0, 1.0, 1.0]]), cover)[0]
    assert zero[0] == 0 and zero[8] == 1 and torch.isfinite(zero).all()
    flat = torch.full((1, 20, 20), 3.0)
    torch.testing.assert_close(gaussian_smooth(flat, 2.0), flat)
    spike = torch.zeros(1, 21, 21)
    spike[0, 10, 10] = 1
    smoothed = gaussian_smooth(spike, 1.5)
    assert smoothed.sum() == pytest.approx(1.0, abs=1e-4) and smoothed[0, 10, 10] < 0.2
