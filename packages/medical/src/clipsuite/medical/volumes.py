"""3D volumes: reading (NIfTI, DICOM series), RAS orientation, intensity windows, slices -> CLIP inputs.

Arrays are always float32 in RAS index order (i -> patient's Right, j -> Anterior, k -> Superior),
as ``nibabel.as_closest_canonical`` and MONAI's ``Orientation(axcodes="RAS")`` give. 2D slices are
cut in radiological display (anterior up, the patient's right on the viewer's left), matching how
radiology images (and the CLIP models trained on them) look.

DICOM series are assembled with pydicom directly (sort by position along the slice normal, apply the
rescale slope/intercept, LPS -> RAS), which is what MONAI's ``PydicomReader`` does; MONAI itself is
optional here (``reader="monai"``) because importing it costs tens of seconds on a small machine.
Which files make the series, and decoding compressed pixel data, is ``clipsuite.medical.dicom``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F

from clipsuite.core.errors import InputError, first_line
from clipsuite.core.skipping import Skipped
from clipsuite.medical.dicom import decode_pixels, dicom_files, looks_dicom, series_files

if TYPE_CHECKING:
    from nibabel.spatialimages import SpatialImage

    from clipsuite.core.models import ClipModel

NIFTI_SUFFIXES = (".nii", ".nii.gz")
Axis = Literal["axial", "coronal", "sagittal"]
Mode = Literal["slice", "2.5d", "windows"]
AXES: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}

# CT windows as (a_min, a_max) in HU; soft tissue and brain as MONAI's tutorials, the others
# from the usual width/level pairs (lung W1500/L-600, bone W1800/L400, mediastinum W350/L50).
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "soft-tissue": (-135.0, 215.0),
    "lung": (-1350.0, 150.0),
    "bone": (-500.0, 1300.0),
    "brain": (0.0, 80.0),
    "mediastinum": (-125.0, 225.0),
}
DEFAULT_RGB_WINDOWS = ("soft-tissue", "lung", "bone")


@dataclass
class Volume:
    """A 3D scan in RAS index order with its voxel-to-world affine (mm)."""

    data: np.ndarray  # float32 [X, Y, Z]
    affine: np.ndarray  # 4x4
    source: str
    # files beside a named DICOM file that were not used (undecodable, or the same image again), each
    # with its one-line reason: the caller says so, the volume is built from the rest
    left_out: list[Skipped] = field(default_factory=list)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return cast(tuple[float, float, float],  # the three axes' column norms
                    tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)


# ---- reading ------------------------------------------------------------------------------------
def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def is_volume_path(path: str | os.PathLike[str]) -> bool:
    """A NIfTI file, a DICOM file, or a folder holding DICOM files."""
    path = Path(path)
    if path.is_dir():
        return any(looks_dicom(p) for p in sorted(path.iterdir())[:50] if p.is_file())
    return is_nifti(path) or looks_dicom(path)


def _check_array(data: np.ndarray, source: str) -> np.ndarray:
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]  # a trailing singleton time/channel axis is common in NIfTI files
    if data.ndim != 3:
        raise InputError(f"{source}: expected a 3D volume, got {data.ndim} dimensions (shape {tuple(data.shape)})")
    if min(data.shape) < 1:
        raise InputError(f"{source}: empty volume (shape {tuple(data.shape)})")
    finite = np.isfinite(data)
    if not finite.all():
        bad = int((~finite).sum())
        raise InputError(f"{source}: volume holds {bad} NaN or infinite voxels; clean the file before use")
    return np.ascontiguousarray(data, dtype=np.float32)


def reorient_to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip/transpose ``data`` so its axes point R, A, S; the affine follows (nibabel's canonical)."""
    from nibabel import orientations as ornt

    current = ornt.io_orientation(affine)
    transform = ornt.ornt_transform(current, ornt.axcodes2ornt(("R", "A", "S")))
    new = ornt.apply_orientation(data, transform)
    new_affine = affine @ ornt.inv_ornt_aff(transform, data.shape)
    return np.ascontiguousarray(new, dtype=np.float32), new_affine


def _read_nifti(path: Path) -> SpatialImage:  # or InputError
    import nibabel as nib

    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        return cast("SpatialImage", nib.load(str(path)))  # an image with data and affine (NIfTI)
    except Exception as error:  # noqa: BLE001 - nibabel raises ImageFileError, EOFError, zlib errors
        raise InputError(f"{path}: not a readable NIfTI file ({first_line(error)})") from None


def _nifti_data(path: Path, dataobj: object) -> np.ndarray:
    try:
        return np.asarray(dataobj, dtype=np.float32)
    except Exception as error:  # noqa: BLE001 - truncated or corrupt data: same zoo of reader errors
        raise InputError(f"{path}: not a readable NIfTI file ({first_line(error)})") from None


def _nifti_volume(path: Path, data: np.ndarray, affine: np.ndarray, source: str) -> Volume:
    data = _check_array(data, source)
    data, affine = reorient_to_ras(data, np.asarray(affine, dtype=np.float64))
    return Volume(data, affine, source)


def _check_volume_index(path: Path, count: int, volume_index: int) -> int:
    if not -count <= volume_index < count:
        raise InputError(f"{path}: volume index {volume_index} is outside the file's {count} volumes (0..{count - 1})")
    return volume_index % count


def load_nifti(path: str | os.PathLike[str], volume_index: int | None = None) -> Volume:
    """One 3D volume; a 4D file (time series, several volumes) needs ``volume_index``."""
    path = Path(path)
    image = _read_nifti(path)
    shape = tuple(image.shape)
    if len(shape) == 4 and shape[3] > 1:
        if volume_index is None:
            raise InputError(f"{path}: a 4D file of {shape[3]} volumes; choose one with volume_index "
                             f"(--volume-index 0..{shape[3] - 1}) or read them all with load_volumes")
        t = _check_volume_index(path, shape[3], volume_index)
        return _nifti_volume(path, _nifti_data(path, image.dataobj[..., t]), image.affine, f"{path}[volume {t}]")
    if volume_index is not None:
        _check_volume_index(path, 1, volume_index)  # a 3D file is volume 0
    return _nifti_volume(path, _nifti_data(path, image.dataobj), image.affine, str(path))


def load_nifti_volumes(path: str | os.PathLike[str]) -> list[Volume]:
    """Every 3D volume of a NIfTI file: one for a 3D file, one per index of a 4D file's last axis."""
    path = Path(path)
    image = _read_nifti(path)
    shape = tuple(image.shape)
    if len(shape) != 4 or shape[3] == 1:
        return [load_nifti(path)]
    data = _nifti_data(path, image.dataobj)
    return [_nifti_volume(path, data[..., t], image.affine, f"{path}[volume {t}]") for t in range(shape[3])]


def load_dicom_series(path: str | os.PathLike[str], reader: Literal["pydicom", "monai"] = "pydicom") -> Volume:
    """A folder holding exactly one DICOM series, or one file: that file's series -> RAS volume in HU.

    In a folder every file must decode. For one named file, a neighbour of its series that does not
    decode, or repeats an image, is left out and listed in ``Volume.left_out``; the named file must decode."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: folder not found")
    folder = path if path.is_dir() else path.parent
    found = series_files(path)
    headers, left_out = found.headers, list(found.left_out)
    source = str(folder) if path.is_dir() else str(path)
    if reader == "monai":
        if not path.is_dir() and len(headers) != len(dicom_files(folder)):
            raise InputError(f"{path}: the monai reader reads whole folders and this one holds more than the "
                             "file's series; use the pydicom reader")
        return _load_dicom_monai(folder)
    first = headers[0][1]
    try:
        orientation = np.asarray(first.ImageOrientationPatient, dtype=np.float64)
        row_dir, col_dir = orientation[:3], orientation[3:]
        normal = np.cross(row_dir, col_dir)
        positions = {f: np.asarray(h.ImagePositionPatient, dtype=np.float64) for f, h in headers}
    except AttributeError as error:
        raise InputError(f"{source}: DICOM files lack patient position/orientation ({error})") from None
    slices, decoded = [], []
    for file, _ in sorted(headers, key=lambda fh: float(positions[fh[0]] @ normal)):
        try:
            pixels, ds = decode_pixels(file)
        except InputError as error:
            if path.is_dir() or file == path:  # what the user named must decode
                raise
            left_out.append(Skipped(str(file), f"{error}; left out of the series of {path.name}"))
            continue
        if pixels.ndim != 2:
            raise InputError(f"{file}: pixel data of shape {tuple(pixels.shape)} (several frames or colour "
                             "samples), not one greyscale slice of a series")
        slope, intercept = float(getattr(ds, "RescaleSlope", 1)), float(getattr(ds, "RescaleIntercept", 0))
        slices.append(pixels.astype(np.float32) * slope + intercept)
        decoded.append(file)
    _check_distinct_positions(source, decoded, [float(positions[f] @ normal) for f in decoded])
    if len({s.shape for s in slices}) > 1:
        raise InputError(f"{source}: DICOM slices have different sizes")
    stack = np.stack(slices, axis=-1)  # [rows, cols, slices]
    data = np.ascontiguousarray(stack.transpose(1, 0, 2))  # [cols (x), rows (y), z]
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)
    z_positions = [float(positions[f] @ normal) for f in decoded]
    # the median step: a neighbour left out leaves a gap, which must not stretch every slice's spacing
    z_step = float(np.median(np.diff(z_positions))) if len(z_positions) > 1 else float(
        getattr(first, "SliceThickness", 1.0))
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_dir * col_spacing  # moving along a row steps one column
    affine_lps[:3, 1] = col_dir * row_spacing
    affine_lps[:3, 2] = normal * z_step
    affine_lps[:3, 3] = positions[decoded[0]]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps  # LPS world -> RAS world
    data = _check_array(data, source)
    data, affine = reorient_to_ras(data, affine)
    return Volume(data, affine, source, left_out)


def _check_distinct_positions(source: str, files: list[Path], z: list[float]) -> None:
    """Two slices at one position are two volumes in one series (echoes, phases, repeats): stacking them
    gave a zero slice step and a volume that is neither."""
    for (a, za), (b, zb) in zip(zip(files, z), zip(files[1:], z[1:])):
        if abs(zb - za) < 1e-3:
            raise InputError(f"{source}: {a.name} and {b.name} lie at the same position ({za:g} mm along the "
                             "slice normal): the series holds more than one volume (echoes, phases or repeats); "
                             "put each volume's files in a folder of its own")


def _load_dicom_monai(folder: Path) -> Volume:
    from monai.transforms import LoadImage  # slow import: only when asked for

    image = LoadImage(reader="PydicomReader", image_only=True)(str(folder))
    data = _check_array(np.asarray(image, dtype=np.float32), str(folder))
    data, affine = reorient_to_ras(data, np.asarray(image.affine, dtype=np.float64))
    return Volume(data, affine, str(folder))


def load_volume(path: str | os.PathLike[str], volume_index: int | None = None) -> Volume:
    """NIfTI file, DICOM series folder or one DICOM file (its series) -> RAS float32 volume; bad files
    raise ``InputError``. ``volume_index`` picks one volume of a 4D NIfTI file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file or folder not found")
    if path.is_file() and is_nifti(path):
        return load_nifti(path, volume_index)
    if path.is_dir() or looks_dicom(path):
        if volume_index is not None:  # a DICOM series is one volume: any other index was ignored
            _check_volume_index(path, 1, volume_index)
        return load_dicom_series(path)
    raise InputError(f"{path}: not a volume (expected .nii, .nii.gz or a DICOM series folder)")


def load_volumes(path: str | os.PathLike[str], volume_index: int | None = None) -> list[Volume]:
    """``load_volume``, except that a 4D NIfTI file without ``volume_index`` gives all its volumes."""
    path = Path(path)
    if volume_index is None and path.is_file() and is_nifti(path):
        return load_nifti_volumes(path)
    return [load_volume(path, volume_index)]


# ---- intensities --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """A fixed HU range (CT) or per-volume percentiles (MR), mapped to [0, 1] with clipping."""

    a_min: float | None = None
    a_max: float | None = None
    percentiles: tuple[float, float] | None = None
    name: str = "custom"

    def range_for(self, data: np.ndarray) -> tuple[float, float]:
        if self.percentiles is not None:
            low, high = np.percentile(data, self.percentiles)
            return float(low), float(high)
        return float(self.a_min), float(self.a_max)  # type: ignore[arg-type]  # no percentiles: a fixed HU range


def parse_window(spec: str | Window) -> Window:
    """``soft-tissue``/``lung``/``bone``/``brain``/``mediastinum``, ``A_MIN,A_MAX`` (HU), ``mr``
    (0.5-99.5 percentiles) or ``percentile:LOW,HIGH``."""
    if isinstance(spec, Window):
        return spec
    text = spec.strip().lower().replace("_", "-")
    if text in CT_WINDOWS:
        return Window(*CT_WINDOWS[text], name=text)
    if text in ("mr", "mri", "percentile"):
        return Window(percentiles=(0.5, 99.5), name="mr")
    try:
        if text.startswith("percentile:"):
            low, high = (float(v) for v in text.split(":", 1)[1].split(","))
            if not 0 <= low < high <= 100:
                raise ValueError
            return Window(percentiles=(low, high), name=text)
        a_min, a_max = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"window '{spec}': use one of {', '.join([*CT_WINDOWS, 'mr'])}, 'A_MIN,A_MAX' "
                         "or 'percentile:LOW,HIGH'") from None
    if a_max <= a_min:
        raise InputError(f"window '{spec}': a_max must be greater than a_min")
    return Window(a_min, a_max, name=f"{a_min:g},{a_max:g}")


def apply_window(data: np.ndarray | torch.Tensor, window: str | Window,
                 reference: np.ndarray | None = None) -> torch.Tensor:
    """Map intensities to [0, 1] (``ScaleIntensityRange(a_min, a_max, 0, 1, clip=True)``); percentile
    windows take their range from ``reference`` (the whole volume) when given."""
    window = parse_window(window)
    source = reference if reference is not None else (data.numpy() if isinstance(data, torch.Tensor) else data)
    low, high = window.range_for(np.asarray(source))
    tensor = torch.as_tensor(data, dtype=torch.float32)
    return ((tensor - low) / max(high - low, 1e-6)).clamp_(0.0, 1.0)


# ---- slices -------------------------------------------------------------------------------------
def evenly_spaced(n_total: int, n: int) -> list[int]:
    """Centres of ``n`` equal bins over ``n_total`` slices (never the empty edge slices)."""
    if n < 1:
        raise InputError(f"number of slices must be at least 1, got {n}")
    n = min(n, n_total)
    return [int((i + 0.5) * n_total / n) for i in range(n)]


def display_slices(data: torch.Tensor | np.ndarray, axis: Axis, indices: Sequence[int]) -> torch.Tensor:
    """``[S, H, W]`` slices of an RAS ``[X, Y, Z]`` tensor in radiological display orientation."""
    if axis not in AXES:
        raise InputError(f"axis '{axis}': use one of {', '.join(AXES)}")
    dim = AXES[axis]
    array = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    picked = np.moveaxis(array.take(list(indices), axis=dim), dim, 0)
    # remaining dims: axial (X, Y), coronal (X, Z), sagittal (Y, Z). Flipping both puts the patient's
    # right (or anterior, for sagittal) on the viewer's left and anterior/superior at the top. One
    # contiguous copy at the end: torch's index_select/flip on the strided volume were 4x slower.
    return torch.from_numpy(np.ascontiguousarray(picked[:, ::-1, ::-1].transpose(0, 2, 1)))


def select_indices(n_total: int, slices: Sequence[int] | None = None, n: int | None = None) -> list[int]:
    if slices:
        bad = [s for s in slices if not -n_total <= s < n_total]
        if bad:
            raise InputError(f"slice {bad[0]} is outside the volume ({n_total} slices on this axis)")
        return [s % n_total for s in slices]
    return evenly_spaced(n_total, n or n_total)


def volume_to_rgb(volume: Volume, axis: Axis = "axial", slices: Sequence[int] | None = None,
                  n: int | None = None, mode: Mode = "slice", window: str | Window = "soft-tissue",
                  windows: Sequence[str | Window] = DEFAULT_RGB_WINDOWS) -> tuple[torch.Tensor, list[int]]:
    """Volume -> ``[S, 3, H, W]`` in [0, 1] and the slice indices used.

    ``slice``: one window, grey replicated on RGB; ``2.5d``: slices k-1, k, k+1 as R, G, B (edges
    repeat); ``windows``: three windows of slice k as R, G, B (default soft tissue, lung, bone).
    """
    data = torch.from_numpy(volume.data)
    dim = AXES.get(axis)
    if dim is None:
        raise InputError(f"axis '{axis}': use one of {', '.join(AXES)}")
    n_total = data.shape[dim]
    indices = select_indices(n_total, slices, n)
    if mode == "slice":
        grey = apply_window(display_slices(data, axis, indices), window, reference=volume.data)
        return grey.unsqueeze(1).expand(-1, 3, -1, -1).contiguous(), indices
    if mode == "2.5d":
        neighbours = [[min(max(k + d, 0), n_total - 1) for d in (-1, 0, 1)] for k in indices]
        flat = display_slices(data, axis, [k for trio in neighbours for k in trio])
        rgb = apply_window(flat, window, reference=volume.data)
        return rgb.reshape(len(indices), 3, *rgb.shape[1:]), indices
    if mode == "windows":
        if len(windows) != 3:
            raise InputError(f"mode 'windows' needs three windows, got {len(windows)}")
        grey = display_slices(data, axis, indices)
        channels = [apply_window(grey, w, reference=volume.data) for w in windows]
        return torch.stack(channels, dim=1), indices
    raise InputError(f"mode '{mode}': use one of slice, 2.5d, windows")


class ClipInputs:
    """A MONAI-style callable: ``[S, 3, H, W]`` in [0, 1] -> resized and normalised CLIP pixels.

    Done in torch on whole batches (no PIL round trip) so that preprocessing keeps up with the encoder.
    """

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.image_size = int(image_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    @classmethod
    def for_model(cls, clip: ClipModel) -> ClipInputs:
        cfg = clip.preprocess_cfg
        return cls(clip.image_size, cfg.mean, cfg.std)

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        h, w = rgb.shape[-2:]
        if (h, w) != (self.image_size, self.image_size):
            # pad to square first so that anatomy keeps its aspect ratio, then resize
            side = max(h, w)
            rgb = F.pad(rgb, ((side - w) // 2, side - w - (side - w) // 2, (side - h) // 2, side - h - (side - h) // 2))
            rgb = F.interpolate(rgb, size=(self.image_size, self.image_size), mode="bilinear",
                                align_corners=False, antialias=side > self.image_size)
        return (rgb - self.mean.to(rgb.device)) / self.std.to(rgb.device)


def aggregate(slice_scores: torch.Tensor, how: Literal["mean", "max"] = "mean") -> torch.Tensor:
    """Slice-level class probabilities ``[S, C]`` -> one volume-level score vector ``[C]``.

    ``max`` keeps, per class, its strongest slice (a lesion seen on any slice counts); scores are
    re-normalised to sum to one so both rules give comparable numbers.
    """
    if slice_scores.ndim != 2 or slice_scores.shape[0] == 0:
        raise InputError(f"expected slice scores [slices, classes], got shape {tuple(slice_scores.shape)}")
    if how == "mean":
        return slice_scores.mean(dim=0)
    if how == "max":
        peak = slice_scores.max(dim=0).values
        return peak / peak.sum().clamp_min(1e-12)
    raise InputError(f"aggregation '{how}': use mean or max")


