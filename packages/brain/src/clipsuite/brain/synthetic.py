"""A synthetic subject in the real on-disk formats, for tests and the demo.

Stimuli are the core's coloured-shape images (categories = colour x shape, captions say colour, shape
and position). Their CLIP image embeddings drive a hidden linear-nonlinear map into a block of
"visual" voxels inside a brain-shaped mask; other mask voxels carry noise only. Every session adds
its own per-voxel baseline (what per-session z-scoring removes). Test stimuli are shown several
times across sessions, training stimuli once. Written as NSD-style int16 betas (x ``beta_scale``),
one 4D NIfTI per session, plus the ROI mask, a trial table (TSV), a stimulus table (CSV) and the
dataset config (JSON). ``truth.npz`` keeps the hidden signal strength of every mask voxel.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np

from clipsuite.core import synthetic as shapes

Embed = Callable[[list[Path]], np.ndarray]
AFFINE = np.array([[2.0, 0, 0, -20], [0, 2.0, 0, -24], [0, 0, 2.0, -16], [0, 0, 0, 1]])


def _clip_embed(paths: list[Path]) -> np.ndarray:
    from clipsuite.core.models import load_model

    clip = load_model("tiny", device="cpu")
    return clip.encode_images([str(p) for p in paths], batch_size=64).float().numpy()


def _brain_mask(grid: tuple[int, int, int]) -> np.ndarray:
    """An ellipsoid filling most of the grid."""
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in grid], indexing="ij")
    return cast(np.ndarray, sum(a ** 2 for a in axes) <= 0.9)  # sum of arrays: an array, not the int start


def make_subject(root: str | Path, n_train: int = 240, n_test: int = 40, n_sessions: int = 3, test_repeats: int = 3,
                 grid: tuple[int, int, int] = (12, 14, 10), signal_fraction: float = 0.3, noise: float = 0.6,
                 session_shift: float = 0.5, n_constant: int = 3, image_size: int = 64, seed: int = 0,
                 embed: Embed | None = None) -> Path:
    """Write the subject under ``root`` and return its dataset config path."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    samples = shapes.sample_shapes(n_train + n_test, seed)
    (root / "stimuli").mkdir(parents=True, exist_ok=True)
    draw_rng = random.Random(seed + 1)
    images = []
    for i, sample in enumerate(samples):
        path = root / "stimuli" / f"stim{i:04d}.png"
        shapes.draw_shape(sample, image_size, draw_rng).save(path)
        images.append(path)
    features = np.asarray((embed or _clip_embed)(images), dtype=np.float64)
    features = (features - features.mean(0)) / (features.std(0) + 1e-8)

    mask = _brain_mask(grid)
    coords = np.argwhere(mask)
    n_vox = len(coords)
    # signal in the posterior block of the mask ("visual cortex"), strength ramping inside it
    posterior = coords[:, 1] < np.quantile(coords[:, 1], signal_fraction)
    strength = np.where(posterior, rng.uniform(0.4, 1.0, n_vox), 0.0)
    weights = rng.normal(0, 1, (features.shape[1], n_vox)) / np.sqrt(features.shape[1])
    drive = features @ weights
    clean = strength * np.tanh(drive / drive.std(0))  # (n_stimuli, n_vox)
    constant = rng.choice(np.flatnonzero(~posterior), size=min(n_constant, int((~posterior).sum())), replace=False)

    # trial schedule: each training stimulus once, each test stimulus `test_repeats` times, spread over sessions
    ids = [f"s{i:04d}" for i in range(len(samples))]
    events = [(i, 0) for i in range(n_train)] + [(n_train + i, r) for i in range(n_test) for r in range(test_repeats)]
    order = rng.permutation(len(events))
    per_session = np.array_split(order, n_sessions)
    trial_rows: list[tuple[int, int, str]] = []
    betas: list[str] = []
    for s, chunk in enumerate(per_session, start=1):
        baseline = rng.normal(0, session_shift, n_vox)
        stim = np.array([events[k][0] for k in chunk])
        values = clean[stim] + baseline + rng.normal(0, noise, (len(stim), n_vox))
        values[:, constant] = 0.0
        volume = np.zeros((*grid, len(stim)), dtype=np.int16)
        volume[tuple(coords.T)] = np.clip(np.round(values * 300), -32768, 32767).astype(np.int16).T
        name = f"betas_session{s:02d}.nii.gz"
        image = nib.Nifti1Image(volume, AFFINE)
        image.header.set_xyzt_units("mm", "sec")
        nib.save(image, root / name)
        betas.append(name)
        trial_rows.extend((s, t, ids[k]) for t, k in enumerate(stim))

    nib.save(nib.Nifti1Image(mask.astype(np.uint8), AFFINE), root / "mask.nii.gz")
    with open(root / "trials.tsv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["session", "trial", "stimulus"])
        writer.writerows(trial_rows)
    with open(root / "stimuli.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stimulus", "image", "caption", "category", "split"])
        for i, (sample, path) in enumerate(zip(samples, images)):
            writer.writerow([ids[i], path.relative_to(root).as_posix(), sample.caption, sample.class_name,
                             "train" if i < n_train else "test"])
    truth = np.zeros(grid, dtype=np.float32)
    truth[tuple(coords.T)] = strength
    np.savez(root / "truth.npz", strength=truth, constant=coords[constant])
    config = {"format": "nifti", "mask": "mask.nii.gz", "betas": betas, "trials": "trials.tsv",
              "beta_scale": 300, "stimuli": "stimuli.csv"}
    (root / "dataset.json").write_text(json.dumps(config, indent=2) + "\n")
    return root / "dataset.json"
