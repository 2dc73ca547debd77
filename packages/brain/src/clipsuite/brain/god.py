"""GOD-style HDF5 (bdpy ``BData``): ``/dataSet`` (samples x columns) and ``/metaData/{key,description,value}``.

``metaData/value`` has one row per key and one column per dataSet column: 1 where the column belongs to
the key (``VoxelData``, ``ROI_VC``, ``DataType``, ``Label``, ``Run`` ...), NaN elsewhere; voxel
coordinates ride in rows such as ``voxel_x``. Rows are read in blocks and only the ROI's columns kept.
DataType: 1 training, 2 test (perception), 3 test (imagery). A stimulus id is the Label as written
(``1518415.057``: WordNet id and image number).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from clipsuite.brain.data import BrainData, DatasetConfig, drop_bad_voxels
from clipsuite.core.errors import InputError


def _keys(meta: h5py.Group) -> list[str]:
    return [k.decode() if isinstance(k, bytes) else str(k) for k in meta["key"][()]]


def _column(path: Path, keys: list[str], values: np.ndarray, key: str) -> int:
    if key not in keys:
        raise InputError(f"{path}: no '{key}' metadata (has: {', '.join(keys)})")
    cols = np.flatnonzero(values[keys.index(key)] == 1)
    if len(cols) != 1:
        raise InputError(f"{path}: metadata '{key}' should mark one column, marks {len(cols)}")
    return int(cols[0])


def stimulus_id(label: float) -> str:
    return np.format_float_positional(float(label), trim="-")


def load_god(config: DatasetConfig, block: int = 256) -> BrainData:
    path = config.h5
    assert path is not None
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise InputError(f"{path}: not a readable HDF5 file ({error})") from None
    with handle:
        if "dataSet" not in handle or "metaData" not in handle:
            raise InputError(f"{path}: not a bdpy/GOD file (needs /dataSet and /metaData)")
        meta = handle["metaData"]
        keys = _keys(meta)
        values = np.asarray(meta["value"][()], dtype=np.float64)
        dataset = handle["dataSet"]
        if values.shape != (len(keys), dataset.shape[1]):
            raise InputError(f"{path}: metaData/value is {values.shape}, expected ({len(keys)}, {dataset.shape[1]})")
        if config.roi not in keys:
            raise InputError(f"{path}: no ROI '{config.roi}' (ROIs here: "
                             f"{', '.join(k for k in keys if k.startswith('ROI_')) or 'none'})")
        voxels = np.flatnonzero(values[keys.index(config.roi)] == 1)
        if len(voxels) == 0:
            raise InputError(f"{path}: ROI '{config.roi}' selects no column")
        dtype_col = _column(path, keys, values, "DataType")
        label_col = _column(path, keys, values, "Label")
        run_col = _column(path, keys, values, "Run") if "Run" in keys else None
        meta_cols = [c for c in (dtype_col, label_col, run_col) if c is not None]
        info = np.asarray(dataset[:, sorted(meta_cols)], dtype=np.float64)
        by_col = {c: info[:, i] for i, c in enumerate(sorted(meta_cols))}
        rows = np.flatnonzero(np.isin(by_col[dtype_col], config.data_types))
        if len(rows) == 0:
            raise InputError(f"{path}: no sample with DataType in {list(config.data_types)}")
        out = np.empty((len(rows), len(voxels)), dtype=np.float32)
        for start in range(0, len(rows), block):
            part = rows[start:start + block]
            chunk = np.asarray(dataset[int(part[0]):int(part[-1]) + 1], dtype=np.float32)
            out[start:start + len(part)] = chunk[part - part[0]][:, voxels]
        coords = np.zeros((len(voxels), 3), dtype=np.int64)
        for axis, key in enumerate(("voxel_x", "voxel_y", "voxel_z")):
            if key in keys:
                coords[:, axis] = np.round(values[keys.index(key), voxels]).astype(np.int64)
    labels = by_col[label_col][rows]
    if not np.isfinite(labels).all():
        raise InputError(f"{path}: some selected samples have no Label")
    sessions = by_col[run_col][rows].astype(np.int64) if run_col is not None else np.ones(len(rows), dtype=np.int64)
    responses, coords, dropped = drop_bad_voxels(out, coords)
    return BrainData(responses=responses, stimulus=np.asarray([stimulus_id(v) for v in labels], dtype=str),
                     session=sessions, voxels=coords, dropped=dropped, source=str(path))


def write_god(path: str | Path, responses: np.ndarray, labels: np.ndarray, data_type: np.ndarray, run: np.ndarray,
              roi: str = "ROI_VC", coords: np.ndarray | None = None) -> Path:
    """Write a bdpy-layout HDF5 (voxels first, then DataType, Label, Run columns)."""
    path = Path(path)
    n, v = responses.shape
    data = np.concatenate([responses, data_type[:, None], labels[:, None], run[:, None]], axis=1).astype(np.float64)
    keys = ["VoxelData", roi, "DataType", "Label", "Run", "voxel_x", "voxel_y", "voxel_z"]
    meta = np.full((len(keys), v + 3), np.nan)
    meta[0, :v] = 1
    meta[1, :v] = 1
    for i in range(3):
        meta[2 + i, v + i] = 1
    if coords is not None:
        meta[5:8, :v] = coords.T
    with h5py.File(path, "w") as handle:
        handle.create_dataset("dataSet", data=data)
        group = handle.create_group("metaData")
        group.create_dataset("key", data=np.array(keys, dtype="S"))
        group.create_dataset("description", data=np.array([f"{k} column(s)" for k in keys], dtype="S"))
        group.create_dataset("value", data=meta)
    return path
