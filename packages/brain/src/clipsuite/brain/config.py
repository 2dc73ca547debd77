"""A subject's dataset config (which files, which format), read and checked without torch.

The CLI reads it first, so a missing beta file or mask answers in milliseconds, before torch and
nibabel are imported. The format is described in :mod:`clipsuite.brain.data`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clipsuite.core.errors import InputError
from clipsuite.core.json_files import read_json

if TYPE_CHECKING:
    from clipsuite.brain.nsd_layout import NSDSource


@dataclass(frozen=True)
class DatasetConfig:
    """Where a subject's files are. ``format`` is ``nifti``, ``god`` or ``nsd``."""

    path: Path                       # the config file itself (for messages)
    format: str
    mask: Path | None = None
    betas: tuple[Path, ...] = ()
    trials: Path | None = None
    beta_scale: float = 1.0          # raw values are divided by this (NSD int16 betas: 300)
    stimuli: Path | None = None
    h5: Path | None = None           # GOD: the bdpy HDF5 file
    roi: str = "ROI_VC"              # GOD: the ROI metadata column that selects voxels
    data_types: tuple[int, ...] = (1, 2)  # GOD DataType values to read (1 training, 2 test perception)
    nsd: NSDSource | None = None     # NSD: the subject's files in the release's layout (nsd_layout.py)


def load_config(path: str | Path) -> DatasetConfig:
    """Read and check a dataset config; every path it names must exist."""
    path = Path(path)
    raw = read_json(path, "dataset config")
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a dataset config must be a JSON object")
    root = path.parent

    def file(key: str, required: bool = True) -> Path | None:
        value = raw.get(key)
        if value is None:
            if required:
                raise InputError(f"{path}: missing '{key}'")
            return None
        target = (root / str(value)) if not Path(str(value)).is_absolute() else Path(str(value))
        if not target.exists():
            raise InputError(f"{path}: '{key}' names {target}, which does not exist")
        return target

    stimuli = file("stimuli", required=False)
    fmt = str(raw.get("format", "nifti")).lower()
    if fmt == "god":
        try:
            types = tuple(int(v) for v in raw.get("data_types", (1, 2)))
        except (TypeError, ValueError):
            raise InputError(f"{path}: 'data_types' must be a list of integers") from None
        return DatasetConfig(path=path, format="god", h5=file("h5"), stimuli=stimuli,
                             roi=str(raw.get("roi", "ROI_VC")), data_types=types)
    if fmt == "nsd":
        from clipsuite.brain.nsd_layout import BETA_SCALE, read_nsd_config

        nsd = read_nsd_config(path, raw)
        return DatasetConfig(path=path, format="nsd", mask=nsd.roi_path, betas=nsd.betas, beta_scale=BETA_SCALE,
                             nsd=nsd)
    if fmt != "nifti":
        raise InputError(f"{path}: unknown format '{fmt}' (nifti, god or nsd)")
    betas = raw.get("betas")
    if not isinstance(betas, list) or not betas:
        raise InputError(f"{path}: 'betas' must be a non-empty list of 4D NIfTI files, one per session")
    paths = []
    for index, value in enumerate(betas):
        target = root / str(value)
        if not target.is_file():
            raise InputError(f"{path}: betas[{index}] names {target}, which does not exist")
        paths.append(target)
    try:
        scale = float(raw.get("beta_scale", 1.0))
    except (TypeError, ValueError):
        scale = float("nan")
    if not math.isfinite(scale) or scale <= 0:
        raise InputError(f"{path}: 'beta_scale' must be a positive number, got {raw.get('beta_scale')}")
    return DatasetConfig(path=path, format="nifti", mask=file("mask"), betas=tuple(paths), trials=file("trials"),
                         beta_scale=scale, stimuli=stimuli)
