"""fMRI response data: NIfTI beta series with an ROI mask, read lazily session by session.

A subject is described by a dataset config (JSON, paths relative to the file)::

    {"format": "nifti", "mask": "mask.nii.gz", "betas": ["betas_session01.nii.gz", ...],
     "trials": "trials.tsv", "beta_scale": 300, "stimuli": "stimuli.csv"}

``betas`` are 4D NIfTI files, one volume per trial (NSD: ``betas_sessionNN.nii.gz``, int16 x 300).
The trial table (CSV or TSV) maps ``session`` (1-based position in ``betas``) and ``trial`` (0-based
volume index) to a ``stimulus`` id. The stimulus table (optional here) names, per ``stimulus``, its
``image`` and optionally ``caption``, ``category`` and ``split`` (train/test). GOD-style HDF5 files
(``"format": "god"``) are read by :mod:`clipsuite.brain.god` into the same :class:`BrainData`.

Only the masked voxels of the referenced trials are kept: a session's 4D file is read in chunks of
volumes (``dataobj`` slicing, scale factors applied by nibabel), never whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np

from clipsuite.brain.config import DatasetConfig, load_config  # re-exported: the torch-free half
from clipsuite.core.errors import InputError
from clipsuite.core.tabular import read_table

AFFINE_TOLERANCE = 1e-3  # mm; betas written by another tool may round the affine


@dataclass
class BrainData:
    """Responses of one subject: one row per trial, one column per kept voxel."""

    responses: np.ndarray            # (n_trials, n_voxels) float32
    stimulus: np.ndarray             # (n_trials,) stimulus ids as str
    session: np.ndarray              # (n_trials,) int, 1-based
    voxels: np.ndarray               # (n_voxels, 3) int voxel indices in the mask's grid
    affine: np.ndarray | None = None  # the mask's affine (NIfTI), None for GOD
    grid: tuple[int, int, int] | None = None  # the mask's shape
    dropped: dict[str, int] = field(default_factory=dict)  # voxels removed, by reason
    source: str = ""

    @property
    def n_voxels(self) -> int:
        return int(self.responses.shape[1])


def load_mask(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The boolean ROI (value > 0) and its affine."""
    img = _load_nifti(path)
    if len(img.shape) != 3:
        raise InputError(f"{path}: an ROI mask must be a 3D volume, got shape {tuple(img.shape)}")
    values = np.asarray(img.dataobj)
    mask = np.nan_to_num(values, nan=0.0) > 0
    if not mask.any():
        raise InputError(f"{path}: the ROI mask selects no voxel (no value > 0)")
    return mask, np.asarray(img.affine, dtype=np.float64)


def _grid(mask: np.ndarray) -> tuple[int, int, int]:
    """The mask's shape as ints (``load_mask`` refuses anything but 3D)."""
    return cast(tuple[int, int, int], tuple(int(v) for v in mask.shape))


def read_trials(path: Path, n_sessions: int) -> dict[int, list[tuple[int, str]]]:
    """``{session: [(volume, stimulus), ...]}`` from the trial table, checked."""
    sessions: dict[int, list[tuple[int, str]]] = {}
    seen: set[tuple[int, int]] = set()
    for record in read_table(path, required=("session", "trial", "stimulus")):
        try:
            session, trial = int(record.text("session")), int(record.text("trial"))
        except ValueError:
            raise record.error("'session' and 'trial' must be integers") from None
        if not 1 <= session <= n_sessions:
            raise record.error(f"session {session} is outside 1..{n_sessions} "
                               f"(the config lists {n_sessions} betas files)")
        if trial < 0:
            raise record.error(f"trial {trial} is negative (trials are 0-based volumes)")
        if (session, trial) in seen:
            raise record.error(f"session {session} trial {trial} is listed twice")
        seen.add((session, trial))
        sessions.setdefault(session, []).append((trial, record.text("stimulus")))
    if not sessions:
        raise InputError(f"{path}: the trial table has no rows")
    return sessions


def _load_nifti(path: Path) -> Any:
    try:
        return nib.load(str(path), keep_file_open=True)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (nib.filebasedimages.ImageFileError, OSError, ValueError, EOFError) as error:
        raise InputError(f"{path}: not a readable NIfTI file ({error})") from None


def read_session(path: Path, mask: np.ndarray, affine: np.ndarray, volumes: list[int], scale: float = 1.0,
                 chunk: int = 32) -> np.ndarray:
    """Masked responses ``(len(volumes), n_mask_voxels)`` of one 4D beta file, in the order asked.

    Volumes are read in ascending chunks so a gzip stream is decompressed once, front to back.
    """
    img = _load_nifti(path)
    shape = tuple(img.shape)
    if len(shape) != 4:
        raise InputError(f"{path}: betas must be a 4D volume (one 3D volume per trial), got shape {shape}")
    if shape[:3] != mask.shape:
        raise InputError(f"{path}: volume grid {shape[:3]} differs from the mask's {mask.shape}")
    if not np.allclose(np.asarray(img.affine), affine, atol=AFFINE_TOLERANCE):
        raise InputError(f"{path}: affine differs from the mask's (not in the same space; resample one of them)")
    missing = sorted(v for v in volumes if v >= shape[3])
    if missing:
        raise InputError(f"{path}: has {shape[3]} volumes but the trial table references volume {missing[0]}"
                         f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}")
    wanted = np.asarray(volumes, dtype=np.int64)
    order = np.unique(wanted)
    out = np.empty((len(order), int(mask.sum())), dtype=np.float32)
    try:
        for start in range(0, len(order), chunk):
            block = order[start:start + chunk]
            lo, hi = int(block[0]), int(block[-1]) + 1
            data = np.asarray(img.dataobj[..., lo:hi], dtype=np.float32)  # slope/intercept applied
            out[start:start + len(block)] = data[mask][:, block - lo].T
    except (OSError, EOFError, ValueError, nib.filebasedimages.ImageFileError) as error:
        raise InputError(f"{path}: could not read volumes ({error})") from None
    if scale != 1.0:
        out /= np.float32(scale)
    return out[np.searchsorted(order, wanted)]


def load_nifti_subject(config: DatasetConfig, on_session: Callable[[int, int], None] | None = None) -> BrainData:
    """Read every session's referenced trials inside the mask; drop NaN and constant voxels (counted)."""
    assert config.mask is not None and config.trials is not None
    mask, affine = load_mask(config.mask)
    trials = read_trials(config.trials, len(config.betas))
    blocks: list[np.ndarray] = []
    stimuli: list[str] = []
    sessions: list[int] = []
    for number, session in enumerate(sorted(trials), start=1):
        rows = trials[session]
        blocks.append(read_session(config.betas[session - 1], mask, affine, [v for v, _ in rows], config.beta_scale))
        stimuli.extend(s for _, s in rows)
        sessions.extend([session] * len(rows))
        if on_session is not None:
            on_session(number, len(trials))
    voxels = np.argwhere(mask)
    responses, voxels, dropped = drop_bad_voxels(np.concatenate(blocks, axis=0), voxels)
    return BrainData(responses=responses, stimulus=np.asarray(stimuli, dtype=str), session=np.asarray(sessions),
                     voxels=voxels, affine=affine, grid=_grid(mask), dropped=dropped,
                     source=str(config.path))


def drop_bad_voxels(responses: np.ndarray, voxels: np.ndarray,
                    rows: int | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Remove voxels with any non-finite value, then voxels constant over all trials; count each.

    The statistics are gathered ``rows`` trials at a time (default: ~4 MB of flags per block, so the check's
    memory does not grow with the trials) and ``responses`` is returned as it is when every voxel is kept:
    checking a subject costs no second copy of its responses."""
    n_voxels = responses.shape[1]
    rows = rows or max(1, (1 << 22) // max(1, n_voxels))
    finite = np.ones(n_voxels, dtype=bool)
    low, high = np.full(n_voxels, np.inf, dtype=np.float64), np.full(n_voxels, -np.inf, dtype=np.float64)
    for start in range(0, len(responses), rows):
        block = responses[start:start + rows]
        finite &= np.isfinite(block).all(axis=0)
        np.fmin(low, block.min(axis=0), out=low)  # fmin skips a NaN column's NaN; `finite` drops it anyway
        np.fmax(high, block.max(axis=0), out=high)
    spread = finite & (high > low)
    keep = finite & spread
    dropped = {"nan": int((~finite).sum()), "constant": int((finite & ~spread).sum())}
    if not keep.any():
        raise InputError("no usable voxel: every voxel in the mask is NaN or constant over the trials")
    if keep.all():
        return np.ascontiguousarray(responses), voxels, dropped
    return np.ascontiguousarray(responses[:, keep]), voxels[keep], dropped


def load_subject(config: DatasetConfig | str | Path,
                 on_session: Callable[[int, int], None] | None = None) -> BrainData:
    """A subject's responses from a dataset config (NIfTI, GOD HDF5 or NSD)."""
    if not isinstance(config, DatasetConfig):
        config = load_config(config)
    if config.format == "god":
        from clipsuite.brain.god import load_god
        return load_god(config)
    if config.format == "nsd":
        from clipsuite.brain.nsd import load_nsd
        return load_nsd(config, on_session)[0]
    return load_nifti_subject(config, on_session)


def to_volume(values: np.ndarray, data: BrainData) -> np.ndarray:
    """Put per-voxel ``values`` back into the mask's 3D grid (NaN outside the kept voxels)."""
    if data.grid is None:
        raise InputError(f"{data.source}: this dataset has no voxel grid (GOD HDF5); maps need NIfTI input")
    if values.shape[0] != data.n_voxels:
        raise InputError(f"{values.shape[0]} values for {data.n_voxels} voxels")
    volume = np.full(data.grid, np.nan, dtype=np.float32)
    volume[tuple(data.voxels.T)] = values
    return volume
