"""Reading a subject of the Natural Scenes Dataset from the release's own files (layout: ``nsd_layout.py``).

Responses: every trial of the selected sessions, only the ROI's voxels, written session by session into
one preallocated array (a session's betas are read in chunks of volumes, never whole), so the working
memory beyond the result does not grow with the number of sessions. Stimuli: one per 73k image the
subject saw, id = the 1-based 73k id as text (``subjectim``'s numbering; the brick row is id - 1), its
picture a row of ``imgBrick`` (read in batches when embedded, never written to files), its caption
COCO's when the config names caption files, split ``test`` for the shared 1000 and ``train`` otherwise
(MindEye's split; the preprocessing averages the test images' repeats).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from clipsuite.brain.config import DatasetConfig
from clipsuite.brain.data import BrainData, drop_bad_voxels, load_mask, read_session
from clipsuite.brain.nsd_layout import BETAS_KEY, BRICK_KEY, NSDSource
from clipsuite.brain.prep import Stimulus
from clipsuite.core.errors import InputError


def read_session_hdf5(path: Path, mask: np.ndarray, out: np.ndarray, scale: float = 1.0, chunk: int = 32) -> None:
    """All volumes of one ``.hdf5`` betas file (``trials x Z x Y X``), masked, into ``out`` (trials x voxels)."""
    try:
        with h5py.File(path, "r") as handle:
            betas = handle[BETAS_KEY]
            if tuple(betas.shape[1:][::-1]) != mask.shape or betas.shape[0] != len(out):
                raise InputError(f"{path}: '{BETAS_KEY}' is {tuple(betas.shape)}, expected ({len(out)}, "
                                 f"{', '.join(str(v) for v in mask.shape[::-1])}) for the ROI's grid")
            inside = np.ascontiguousarray(mask.T)  # the file's (Z, Y, X) order: voxels come out as in mask.T
            order = np.argsort(np.ravel_multi_index(np.nonzero(mask.T)[::-1], mask.shape))
            for start in range(0, len(out), chunk):
                block = np.asarray(betas[start:start + chunk])
                out[start:start + len(block)] = block[:, inside][:, order]
    except (OSError, KeyError) as error:
        raise InputError(f"{path}: could not read '{BETAS_KEY}' ({error})") from None
    if scale != 1.0:
        out /= np.float32(scale)


def load_nsd_responses(source: NSDSource, on_session: Callable[[int, int], None] | None = None,
                       scale: float = 1.0) -> BrainData:
    """The ROI's responses to every trial of the selected sessions (NaN and constant voxels dropped, counted)."""
    mask, affine = load_mask(source.roi_path)
    per = source.trials_per_session
    responses = np.empty((len(source.images), int(mask.sum())), dtype=np.float32)
    for index, path in enumerate(source.betas):
        rows = responses[index * per:(index + 1) * per]
        if path.name.endswith(".hdf5"):
            read_session_hdf5(path, mask, rows, scale)
        else:
            rows[:] = read_session(path, mask, affine, list(range(per)), scale)
        if on_session is not None:
            on_session(index + 1, len(source.betas))
    kept, voxels, dropped = drop_bad_voxels(responses, np.argwhere(mask))
    grid = (int(mask.shape[0]), int(mask.shape[1]), int(mask.shape[2]))
    return BrainData(responses=kept, stimulus=np.asarray([str(i) for i in source.images], dtype=str),
                     session=source.trial_sessions(), voxels=voxels, affine=affine, grid=grid, dropped=dropped,
                     source=str(source.root))


def nsd_stimuli(source: NSDSource) -> dict[str, Stimulus]:
    """One stimulus per image the trials show (ascending 73k id), its picture a row of the brick."""
    return {str(i): Stimulus(str(i), source.brick, source.caption_of.get(i, ""), "",
                             "test" if i in source.shared else "train", brick_row=i - 1)
            for i in sorted(set(source.images))}


def load_nsd(config: DatasetConfig,
             on_session: Callable[[int, int], None] | None = None) -> tuple[BrainData, dict[str, Stimulus]]:
    """A subject's responses and stimuli from an ``"format": "nsd"`` config."""
    if config.nsd is None:
        raise InputError(f"{config.path}: not an NSD config")
    data = load_nsd_responses(config.nsd, on_session, config.beta_scale)
    data.source = str(config.path)
    return data, nsd_stimuli(config.nsd)


def read_brick(brick: h5py.Dataset, rows: Sequence[int]) -> np.ndarray:
    """Images ``rows`` of an open ``imgBrick`` as (n, H, W, 3) uint8, in the order given (HDF5 reads them
    with ascending, distinct indices)."""
    unique, back = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
    return np.asarray(brick[unique.tolist()])[back]


def open_brick(path: Path) -> h5py.File:
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise InputError(f"{path}: not a readable HDF5 file ({error})") from None
    if BRICK_KEY not in handle:
        handle.close()
        raise InputError(f"{path}: no '{BRICK_KEY}' dataset")
    return handle


def brick_batches(path: Path, rows: Sequence[int], batch: int = 64) -> Iterator[np.ndarray]:
    """The brick's images ``rows`` (in the order given), ``batch`` at a time: one batch in memory."""
    with open_brick(path) as handle:
        for start in range(0, len(rows), batch):
            yield read_brick(handle[BRICK_KEY], rows[start:start + batch])
