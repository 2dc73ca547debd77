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


# ---- a mini Natural Scenes Dataset, in the release's own layout (clipsuite.brain.nsd_layout) ----------------
ImageEmbed = Callable[[np.ndarray], np.ndarray]  # (n, H, W, 3) uint8 pictures -> (n, d) features


def _clip_embed_arrays(pictures: np.ndarray) -> np.ndarray:
    from PIL import Image

    from clipsuite.core.models import load_model

    clip = load_model("tiny", device="cpu")
    return clip.encode_images([Image.fromarray(p) for p in pictures], batch_size=64).float().numpy()


def _nsd_pictures(n: int, size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """The brick (n, size, size, 3) uint8 and each picture's caption. Pixel (0, 0) of row r spells its 73k id
    r + 1 (red = id // 256, green = id % 256), so a test can tell which picture a row holds."""
    samples = shapes.sample_shapes(n, seed)
    rng = random.Random(seed + 1)
    brick = np.empty((n, size, size, 3), dtype=np.uint8)
    for row, sample in enumerate(samples):
        brick[row] = np.asarray(shapes.draw_shape(sample, size, rng).convert("RGB"))
        brick[row, 0, 0] = ((row + 1) // 256, (row + 1) % 256, 7)
    return brick, [s.caption for s in samples]


def _nsd_design(subjects: list[int], sessions_on_disk: int, per_session: int, n_shared: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """masterordering (40 sessions), subjectim (8 x n10k), sharedix and the number of 73k images, NSD's way:
    the first n_shared of every subject's 10k images are the shared ones; each subject's others are its own.
    In the sessions on disk the shared images are shown 3 times, the others once."""
    from clipsuite.brain.nsd_layout import N_SUBJECTS, NSD_SESSIONS

    n_unique = sessions_on_disk * per_session - 3 * n_shared
    if n_unique < 1:
        raise ValueError("too few trials for the shared images' three repeats")
    n10k = n_shared + n_unique
    n_images = n_shared + n_unique * len(subjects) + n_shared  # some of the 73k are never shown here
    ids = rng.permutation(n_images) + 1
    shared = np.sort(ids[:n_shared])
    subjectim = np.zeros((N_SUBJECTS, n10k), dtype=np.int64)
    others = ids[n_shared:]
    for index, subject in enumerate(subjects):
        subjectim[subject - 1] = np.concatenate([shared, others[index * n_unique:(index + 1) * n_unique]])
    for subject in set(range(1, N_SUBJECTS + 1)) - set(subjects):  # subjects without betas in the mini tree
        subjectim[subject - 1] = np.concatenate([shared, rng.choice(others, n_unique, replace=False)])
    shown = np.concatenate([np.repeat(np.arange(1, n_shared + 1), 3), np.arange(n_shared + 1, n10k + 1)])
    later = rng.integers(1, n10k + 1, (NSD_SESSIONS - sessions_on_disk) * per_session)
    masterordering = np.concatenate([rng.permutation(shown), later])
    return masterordering, subjectim, shared, n_images


def make_nsd(root: str | Path, subjects: dict[int, int] | None = None, per_session: int = 60, n_shared: int = 20,
             image_size: int = 48, grid: tuple[int, int, int] = (12, 14, 10), hdf5_subjects: tuple[int, ...] = (2,),
             noise: float = 0.6, session_shift: float = 0.5, seed: int = 0, embed: ImageEmbed | None = None) -> Path:
    """Write a mini NSD download under ``root`` (returned) in the release's layout, file names and dtypes.

    ``subjects``: subject -> sessions on disk (default {1: 4, 2: 3, 5: 2}); ``hdf5_subjects`` get
    ``betas_sessionNN.hdf5`` (trials x Z x Y x X) instead of ``.nii.gz``. Sessions have ``per_session``
    trials (NSD: 750), the brick ``image_size`` px pictures (NSD: 425). Each subject's ROI (nsdgeneral: -1
    outside the brain, 0, 1) carries a hidden linear-nonlinear map of the pictures' CLIP embeddings in
    its posterior half, noise elsewhere, plus a per-session baseline. Voxel (0, 0, 0), outside the brain,
    holds the 73k id each trial showed (the truth a test compares with). COCO caption files (train and
    val) go to ``root/coco/annotations``."""
    import h5py
    from scipy.io import savemat

    from clipsuite.brain import nsd_layout as layout

    root = Path(root)
    subjects = dict(subjects or {1: 4, 2: 3, 5: 2})
    rng = np.random.default_rng(seed)
    masterordering, subjectim, shared, n_images = _nsd_design(sorted(subjects), max(subjects.values()),
                                                              per_session, n_shared, rng)
    design = root / layout.DESIGN
    design.parent.mkdir(parents=True, exist_ok=True)
    savemat(design, {"masterordering": masterordering[None].astype(np.float64),
                     "subjectim": subjectim.astype(np.float64), "sharedix": shared[None].astype(np.float64)})
    brick, captions = _nsd_pictures(n_images, image_size, seed)
    (root / layout.BRICK).parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(root / layout.BRICK, "w") as handle:
        handle.create_dataset(layout.BRICK_KEY, data=brick, chunks=(1, image_size, image_size, 3))
    coco_ids = rng.choice(np.arange(1, 600_000), n_images, replace=False)
    val = rng.random(n_images) < 0.15
    _write_stim_info(root / layout.STIM_INFO, coco_ids, val, set(shared.tolist()), subjectim)
    _write_coco(root / "coco" / "annotations", coco_ids, val, captions, image_size)

    seen = sorted({int(subjectim[s - 1, m - 1]) for s, n in subjects.items()
                   for m in masterordering[:n * per_session]})
    embedded = np.asarray((embed or _clip_embed_arrays)(brick[np.asarray(seen) - 1]), dtype=np.float64)
    features = np.zeros((n_images + 1, embedded.shape[1]))
    features[seen] = (embedded - embedded.mean(0)) / (embedded.std(0) + 1e-8)  # row = 73k id
    for subject, n_sessions in sorted(subjects.items()):
        shape = (grid[0] + (subject - 1) % 2, grid[1], grid[2])  # NSD's grids differ between subjects
        _write_nsd_subject(root, subject, n_sessions, shape, masterordering, subjectim[subject - 1], features,
                           subject in hdf5_subjects, per_session, noise, session_shift,
                           np.random.default_rng(seed + 100 * subject))
    return root


def _write_nsd_subject(root: Path, subject: int, n_sessions: int, grid: tuple[int, int, int],
                       masterordering: np.ndarray, images: np.ndarray, features: np.ndarray, hdf5: bool,
                       per_session: int, noise: float, session_shift: float, rng: np.random.Generator) -> None:
    import h5py

    from clipsuite.brain import nsd_layout as layout

    brain = _brain_mask(grid)
    coords = np.argwhere(brain)
    roi = np.where(brain, 0, -1).astype(np.int16)
    in_roi = coords[:, 1] < np.quantile(coords[:, 1], 0.8)  # the front of the brain is outside the ROI
    roi[tuple(coords[in_roi].T)] = 1
    voxels = coords[in_roi]
    posterior = voxels[:, 1] < np.quantile(voxels[:, 1], 0.5)
    strength = np.where(posterior, rng.uniform(0.4, 1.0, len(voxels)), 0.0)
    weights = (rng.normal(0, 1, (features.shape[1], len(voxels))) / np.sqrt(features.shape[1])).astype(np.float32)
    drive = features.astype(np.float32) @ weights  # float32: a benchmark-sized grid stays a few hundred MB
    drive /= drive[np.any(features != 0, axis=1)].std(0) + 1e-8
    clean = strength.astype(np.float32) * np.tanh(drive, out=drive)  # row = 73k id
    roi_dir = root / layout.SUBJECT_ROIS.format(subject=subject, space="func1pt8mm")
    roi_dir.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(roi, AFFINE), roi_dir / "nsdgeneral.nii.gz")
    betas_dir = root / layout.SUBJECT_BETAS.format(subject=subject) / "func1pt8mm" / layout.DEFAULT_GLM
    betas_dir.mkdir(parents=True, exist_ok=True)
    for session in range(1, n_sessions + 1):
        tenk = masterordering[(session - 1) * per_session:session * per_session]
        shown = images[tenk - 1]
        values = clean[shown] + rng.normal(0, session_shift, len(voxels)) + rng.normal(0, noise, (len(shown),
                                                                                                   len(voxels)))
        volume = np.zeros((*grid, len(shown)), dtype=np.int16)
        volume[tuple(voxels.T)] = np.clip(np.round(values * 300), -32768, 32767).astype(np.int16).T
        volume[0, 0, 0] = shown  # the truth: which 73k image this trial showed
        if hdf5:
            with h5py.File(betas_dir / f"betas_session{session:02d}.hdf5", "w") as handle:
                handle.create_dataset(layout.BETAS_KEY, data=volume.transpose(3, 2, 1, 0))
        else:
            image = nib.Nifti1Image(volume, AFFINE)
            image.header.set_xyzt_units("mm", "sec")
            nib.save(image, betas_dir / f"betas_session{session:02d}.nii.gz")


def _write_stim_info(path: Path, coco_ids: np.ndarray, val: np.ndarray, shared: set[int],
                     subjectim: np.ndarray) -> None:
    """nsd_stim_info_merged.csv's leading columns (nsdId 0-based, shared1000, subjectN: shown to N)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = [set(row.tolist()) for row in subjectim]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "cocoId", "cocoSplit", "cropBox", "loss", "nsdId", "flagged", "BOLD5000", "shared1000",
                         *(f"subject{s}" for s in range(1, len(shown) + 1))])
        for row, coco in enumerate(coco_ids):
            writer.writerow([row, int(coco), "val2017" if val[row] else "train2017", "(0, 0, 0.1, 0.1)", 0.0, row,
                             False, False, (row + 1) in shared, *(int((row + 1) in s) for s in shown)])


def _write_coco(folder: Path, coco_ids: np.ndarray, val: np.ndarray, captions: list[str], size: int) -> None:
    """COCO captions files: two captions per image; the shape's own has the lower annotation id but is
    listed second (the reader picks by id, as COCO's order is no promise)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train2017", np.flatnonzero(~val)), ("val2017", np.flatnonzero(val))):
        images = [{"id": int(coco_ids[r]), "file_name": f"{int(coco_ids[r]):012d}.jpg", "height": size,
                   "width": size} for r in rows]
        notes = []
        for r in rows:
            notes.append({"image_id": int(coco_ids[r]), "id": int(2 * r + 2), "caption": "a picture of a shape"})
            notes.append({"image_id": int(coco_ids[r]), "id": int(2 * r + 1), "caption": captions[r]})
        (folder / f"captions_{split}.json").write_text(json.dumps({"info": {}, "licenses": [], "images": images,
                                                                   "annotations": notes}))
