"""What a NIfTI dataset config's headers already refuse, checked before torch (and before any volume).

The mask must be 3D, every betas file 4D on the mask's grid and in its space, and the trial table may
not name a volume past a session's count: nibabel reads these from the headers (a few hundred bytes
of each file), so a mismatch answers in a second instead of after torch, the model and the first
sessions were loaded. ``data.read_session`` checks the same again when it reads (the library path).
"""

from __future__ import annotations

import numpy as np

from clipsuite.brain.config import DatasetConfig
from clipsuite.brain.data import AFFINE_TOLERANCE, _load_nifti, read_trials
from clipsuite.core.errors import InputError


def check_nifti_headers(config: DatasetConfig) -> None:
    """One ``InputError`` naming the first file whose header does not fit the mask (no-op for GOD / NSD)."""
    if config.format != "nifti" or config.mask is None:
        return
    mask = _load_nifti(config.mask)
    grid = tuple(int(v) for v in mask.shape)
    if len(grid) != 3:
        raise InputError(f"{config.mask}: an ROI mask must be a 3D volume, got shape {grid}")
    affine = np.asarray(mask.affine)
    counts = []
    for path in config.betas:
        image = _load_nifti(path)
        shape = tuple(int(v) for v in image.shape)
        if len(shape) != 4:
            raise InputError(f"{path}: betas must be a 4D volume (one 3D volume per trial), got shape {shape}")
        if shape[:3] != grid:
            raise InputError(f"{path}: volume grid {shape[:3]} differs from the mask's {grid} ({config.mask})")
        if not np.allclose(np.asarray(image.affine), affine, atol=AFFINE_TOLERANCE):
            raise InputError(f"{path}: affine differs from the mask's (not in the same space; resample one of them)")
        counts.append(shape[3])
    if config.trials is None:
        return
    for session, rows in read_trials(config.trials, len(config.betas)).items():
        past = sorted(v for v, _ in rows if v >= counts[session - 1])
        if past:
            raise InputError(f"{config.betas[session - 1]}: has {counts[session - 1]} volumes but the trial table "
                             f"references volume {past[0]}"
                             f"{f' (and {len(past) - 1} more)' if len(past) > 1 else ''}")
