"""The Natural Scenes Dataset (NSD) as its release lays it out, found and checked without torch.

A config ``{"format": "nsd", "root": ..., "subject": 1, "space": "func1pt8mm", "roi": "nsdgeneral",
"sessions": "1-37", "captions": [...]}`` names a subject of an NSD download. Everything is read from the
release's own files (paths under ``root``)::

    nsddata/experiments/nsd/nsd_expdesign.mat         masterordering, subjectim, sharedix (MATLAB, 1-based)
    nsddata/experiments/nsd/nsd_stim_info_merged.csv  cocoId per nsdId (0-based 73k index), optional
    nsddata/ppdata/subjNN/<space>/roi/<roi>.nii.gz    the ROI: voxels > 0
    nsddata_betas/ppdata/subjNN/<space>/betas_fithrf_GLMdenoise_RR/betas_sessionNN.nii.gz  (or .hdf5)
    nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5      imgBrick, 73000 x 425 x 425 x 3 uint8

Trial ``t`` (0-based over the whole experiment) is volume ``t % T`` of session ``t // T + 1``, where
``T`` = len(masterordering) / 40 (750 in NSD). It showed the subject's 10k-image ``masterordering[t]``,
whose 73k id is ``subjectim[subject - 1, masterordering[t] - 1]`` (1-based; the brick's row is id - 1).
The shared 1000 (``sharedix``) are MindEye's test images. Only header reads here (scipy for the design,
h5py for shapes, nibabel for NIfTI headers), so the CLI answers bad input before torch is imported.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipsuite.core.errors import InputError

DESIGN = "nsddata/experiments/nsd/nsd_expdesign.mat"
STIM_INFO = "nsddata/experiments/nsd/nsd_stim_info_merged.csv"
BRICK = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
BRICK_KEY = "imgBrick"
BETAS_KEY = "betas"          # the .hdf5 betas: (trials, Z, Y, X), MATLAB's axis order reversed
SUBJECT_BETAS = "nsddata_betas/ppdata/subj{subject:02d}"
SUBJECT_ROIS = "nsddata/ppdata/subj{subject:02d}/{space}/roi"
DEFAULT_GLM = "betas_fithrf_GLMdenoise_RR"
NSD_SESSIONS = 40            # masterordering covers 40 sessions (30,000 trials = 40 x 750)
N_SUBJECTS = 8
BETA_SCALE = 300.0           # NSD betas are int16 percent signal change x 300
_SESSION_FILE = re.compile(r"^betas_session(\d+)\.(nii\.gz|hdf5)$")


@dataclass(frozen=True)
class NSDSource:
    """One subject of an NSD download, checked: the files to read and the trials they hold."""

    root: Path
    subject: int
    space: str
    roi: str
    glm: str
    sessions: tuple[int, ...]               # the selected sessions, ascending
    available: tuple[int, ...]              # every session found on disk for this subject
    design: Path
    stim_info: Path | None
    roi_path: Path
    betas: tuple[Path, ...]                 # one file per selected session
    brick: Path
    trials_per_session: int
    images: tuple[int, ...]                 # 73k id (1-based) shown at each trial of the selected sessions
    shared: frozenset[int]                  # the shared 1000 (73k ids): the test images
    captions: tuple[Path, ...] = ()
    caption_of: Mapping[int, str] = field(default_factory=dict)  # 73k id -> first COCO caption

    def trial_sessions(self) -> np.ndarray:
        """The session of each entry of ``images``."""
        return np.repeat(np.asarray(self.sessions), self.trials_per_session)


@dataclass(frozen=True)
class Design:
    masterordering: np.ndarray   # (n_trials,) 10k index, 1-based
    subjectim: np.ndarray        # (8, n_10k) 73k id, 1-based
    sharedix: np.ndarray         # (n_shared,) 73k id, 1-based


def parse_sessions(value: Any, label: str) -> tuple[int, ...] | None:
    """``"1-37"``, ``"1,3,5-7"``, an int, a list of ints, or ``"all"``/absent (None: every session found).
    ``label`` names the value in messages (``"cfg.json: 'sessions'"``, ``"--sessions"``)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "all")):
        return None
    numbers: set[int] = set()
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            numbers.add(value)
        elif isinstance(value, list) and value and all(type(v) is int for v in value):
            numbers.update(value)
        elif isinstance(value, str):
            for part in value.split(","):
                low, _, high = part.strip().partition("-")
                start, stop = int(low), int(high) if high else int(low)
                if stop < start:
                    raise ValueError
                numbers.update(range(start, stop + 1))
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"{label} must be like \"1-37\", \"1,3,5-7\", a list of numbers or \"all\", "
                         f"got {json.dumps(value)}") from None
    if min(numbers) < 1:
        raise InputError(f"{label}: sessions are numbered from 1, got {min(numbers)}")
    return tuple(sorted(numbers))


def session_text(sessions: Sequence[int]) -> str:
    """``(1, 2, 3, 5)`` -> ``"1-3,5"``."""
    parts, run = [], [sessions[0]]
    for number in sessions[1:]:
        if number == run[-1] + 1:
            run.append(number)
            continue
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [number]
    parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


def _ids(path: Path, raw: dict[str, Any], key: str, ndim: int) -> np.ndarray:
    if key not in raw:
        raise InputError(f"{path}: no '{key}' (not NSD's nsd_expdesign.mat?)")
    values = np.asarray(raw[key])
    values = values.reshape(-1) if ndim == 1 else values
    if values.ndim != ndim or values.size == 0 or not np.issubdtype(values.dtype, np.number):
        raise InputError(f"{path}: '{key}' has shape {np.shape(raw[key])}, expected a {ndim}D array of numbers")
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)) or values.min() < 1:
        raise InputError(f"{path}: '{key}' must hold 1-based integer indices")
    return values.astype(np.int64)


def read_design(path: Path) -> Design:
    """``masterordering``, ``subjectim``, ``sharedix`` of nsd_expdesign.mat, checked against each other."""
    from scipy.io import loadmat

    if not path.is_file():
        raise InputError(f"{path}: not found (NSD's design file; is the root an NSD download?)")
    try:
        raw = loadmat(str(path))
    except (OSError, ValueError, TypeError, NotImplementedError) as error:
        raise InputError(f"{path}: not a readable MATLAB file ({error})") from None
    design = Design(_ids(path, raw, "masterordering", 1), _ids(path, raw, "subjectim", 2),
                    _ids(path, raw, "sharedix", 1))
    if design.subjectim.shape[0] != N_SUBJECTS:
        raise InputError(f"{path}: 'subjectim' has {design.subjectim.shape[0]} rows, NSD has {N_SUBJECTS} subjects")
    if design.masterordering.max() > design.subjectim.shape[1]:
        raise InputError(f"{path}: 'masterordering' names image {design.masterordering.max()} of each subject's "
                         f"{design.subjectim.shape[1]}")
    if len(design.masterordering) % NSD_SESSIONS:
        raise InputError(f"{path}: 'masterordering' has {len(design.masterordering)} trials, not {NSD_SESSIONS} "
                         "sessions of equal length")
    return design


def find_sessions(folder: Path, prefer: str = "nii.gz") -> dict[int, Path]:
    """``{session: file}`` of the betas in ``folder`` (``betas_sessionNN.nii.gz`` or ``.hdf5``)."""
    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        match = _SESSION_FILE.match(path.name)
        if match is None:
            continue
        number = int(match.group(1))
        if number not in found or match.group(2) == prefer:
            found[number] = path
    return found


def _folder(path: Path, what: str, choices_of: Path | None = None) -> None:
    if path.is_dir():
        return
    listing = ""
    if choices_of is not None and choices_of.is_dir():
        names = sorted(p.name for p in choices_of.iterdir() if p.is_dir())
        listing = f"; found: {', '.join(names) if names else 'none'}"
    raise InputError(f"{path}: not found ({what}{listing})")


def betas_shape(path: Path) -> tuple[tuple[int, int, int], int, np.ndarray | None]:
    """(grid, volumes, affine or None) of one session's betas, from the header alone."""
    if path.name.endswith(".hdf5"):
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                if BETAS_KEY not in handle or handle[BETAS_KEY].ndim != 4:
                    raise InputError(f"{path}: needs a 4D '{BETAS_KEY}' dataset (trials x Z x Y x X)")
                t, z, y, x = (int(v) for v in handle[BETAS_KEY].shape)
        except OSError as error:
            raise InputError(f"{path}: not a readable HDF5 file ({error})") from None
        return (x, y, z), t, None
    import nibabel as nib

    try:
        img: Any = nib.load(str(path))  # a NIfTI image (nibabel types it as the base class)
    except (nib.filebasedimages.ImageFileError, OSError, ValueError, EOFError) as error:
        raise InputError(f"{path}: not a readable NIfTI file ({error})") from None
    shape = tuple(int(v) for v in img.shape)
    if len(shape) != 4:
        raise InputError(f"{path}: betas must be a 4D volume (one 3D volume per trial), got shape {shape}")
    return (shape[0], shape[1], shape[2]), shape[3], np.asarray(img.affine, dtype=np.float64)


def roi_header(path: Path) -> tuple[tuple[int, int, int], np.ndarray]:
    import nibabel as nib

    if not path.is_file():
        raise InputError(f"{path}: not found (the ROI; look in {path.parent} for the ROIs of this space)")
    try:
        img: Any = nib.load(str(path))  # a NIfTI image (nibabel types it as the base class)
    except (nib.filebasedimages.ImageFileError, OSError, ValueError, EOFError) as error:
        raise InputError(f"{path}: not a readable NIfTI file ({error})") from None
    if len(img.shape) != 3:
        raise InputError(f"{path}: an ROI must be a 3D volume, got shape {tuple(img.shape)}")
    grid = tuple(int(v) for v in img.shape)
    return (grid[0], grid[1], grid[2]), np.asarray(img.affine, dtype=np.float64)


def check_brick(path: Path, highest: int) -> None:
    """The stimulus brick: a 4D uint8 ``imgBrick`` (images x H x W x 3) holding every 73k id up to ``highest``."""
    import h5py

    if not path.is_file():
        raise InputError(f"{path}: not found (NSD's stimulus brick)")
    try:
        with h5py.File(path, "r") as handle:
            if BRICK_KEY not in handle or not isinstance(handle[BRICK_KEY], h5py.Dataset):
                raise InputError(f"{path}: no '{BRICK_KEY}' dataset (has: {', '.join(handle.keys()) or 'nothing'})")
            brick = handle[BRICK_KEY]
            shape, dtype = tuple(int(v) for v in brick.shape), brick.dtype
    except OSError as error:
        raise InputError(f"{path}: not a readable HDF5 file ({error})") from None
    if len(shape) != 4 or shape[3] != 3 or min(shape) < 1 or dtype != np.uint8:
        raise InputError(f"{path}: '{BRICK_KEY}' is {shape} {dtype}, expected images x height x width x 3 uint8 "
                         "(NSD: 73000 x 425 x 425 x 3)")
    if shape[0] < highest:
        raise InputError(f"{path}: '{BRICK_KEY}' holds {shape[0]} images, the design shows image {highest}")


def read_coco_ids(path: Path) -> dict[int, int]:
    """``{73k id (1-based): COCO image id}`` from nsd_stim_info_merged.csv (``nsdId`` is 0-based)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not {"nsdId", "cocoId"} <= set(reader.fieldnames or ()):
                raise InputError(f"{path}: needs columns nsdId and cocoId (NSD's nsd_stim_info_merged.csv)")
            return {int(row["nsdId"]) + 1: int(row["cocoId"]) for row in reader}
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not readable ({error})") from None
    except ValueError:
        raise InputError(f"{path}: nsdId and cocoId must be integers") from None


def read_captions(paths: Sequence[Path], coco_of: Mapping[int, int]) -> dict[int, str]:
    """The first caption (lowest annotation id) of each image in ``coco_of`` (73k id -> COCO id) from COCO
    caption files; every image must have one."""
    wanted = set(coco_of.values())
    best: dict[int, tuple[int, str]] = {}
    for path in paths:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise InputError(f"{path}: not readable ({error})") from None
        except ValueError as error:
            raise InputError(f"{path}: malformed JSON ({error})") from None
        notes = raw.get("annotations") if isinstance(raw, dict) else None
        if not isinstance(notes, list):
            raise InputError(f"{path}: no 'annotations' list (not a COCO captions file)")
        for note in notes:
            try:
                image, number, text = int(note["image_id"]), int(note.get("id", 0)), str(note["caption"])
            except (AttributeError, KeyError, TypeError, ValueError):  # not an object, or a field missing
                raise InputError(f"{path}: an annotation without image_id and caption") from None
            if image in wanted and (image not in best or number < best[image][0]):
                best[image] = (number, text.strip())
    missing = sorted(k for k, coco in coco_of.items() if coco not in best)
    if missing:
        names = ", ".join(str(p) for p in paths)
        raise InputError(f"{names}: no caption for COCO image {coco_of[missing[0]]} (NSD image {missing[0]})"
                         f"{f' and {len(missing) - 1} more NSD images' if len(missing) > 1 else ''}")
    return {k: best[coco][1] for k, coco in coco_of.items()}


def _resolve(base: Path, value: Any) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def read_nsd_config(source: Path, raw: dict[str, Any]) -> NSDSource:
    """Find and check the subject's files; ``source`` is the config (relative paths start at its folder)."""
    if "root" not in raw:
        raise InputError(f"{source}: missing 'root' (the NSD download's folder)")
    root = _resolve(source.parent, raw["root"])
    _folder(root, "the NSD root")
    design = read_design(root / DESIGN)
    subject = raw.get("subject")
    if isinstance(subject, bool) or not isinstance(subject, int | str) or not str(subject).isdigit() \
            or not 1 <= int(subject) <= N_SUBJECTS:
        raise InputError(f"{source}: 'subject' must be a number 1-{N_SUBJECTS}, got {json.dumps(subject)}")
    subject = int(subject)
    space, roi = str(raw.get("space", "func1pt8mm")), str(raw.get("roi", "nsdgeneral"))
    glm = str(raw.get("glm", DEFAULT_GLM))
    prefer = str(raw.get("betas_format", "nii.gz")).lower().lstrip(".")
    if prefer not in ("nii.gz", "hdf5"):
        raise InputError(f"{source}: 'betas_format' must be nii.gz or hdf5, got '{prefer}'")
    subject_dir = root / SUBJECT_BETAS.format(subject=subject)
    _folder(subject_dir, f"subject {subject}'s betas", subject_dir.parent)
    _folder(subject_dir / space, f"space '{space}' of subject {subject}", subject_dir)
    folder = subject_dir / space / glm
    _folder(folder, f"the betas '{glm}'", subject_dir / space)
    found = find_sessions(folder, prefer)
    if not found:
        raise InputError(f"{folder}: no betas_sessionNN.nii.gz or .hdf5 files")
    available = tuple(sorted(found))
    asked = parse_sessions(raw.get("sessions"), f"{source}: 'sessions'")
    sessions = available if asked is None else asked
    absent = [s for s in sessions if s not in found]
    if absent:
        more = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
        raise InputError(f"{folder}: subject {subject} has sessions {session_text(available)} here, "
                         f"'sessions' asks for {absent[0]}{more}")
    per_session = len(design.masterordering) // NSD_SESSIONS
    if max(sessions) > NSD_SESSIONS:
        raise InputError(f"{root / DESIGN}: NSD has {NSD_SESSIONS} sessions, session {max(sessions)} is not in it")
    roi_path = root / SUBJECT_ROIS.format(subject=subject, space=space) / f"{roi}.nii.gz"
    grid, affine = roi_header(roi_path)
    for number in sessions:
        shape, volumes, session_affine = betas_shape(found[number])
        if shape != grid:
            raise InputError(f"{found[number]}: volume grid {shape} differs from the ROI's {grid} ({roi_path.name})")
        if session_affine is not None and not np.allclose(session_affine, affine, atol=1e-3):
            raise InputError(f"{found[number]}: affine differs from the ROI's ({roi_path.name}; another space?)")
        if volumes != per_session:
            raise InputError(f"{found[number]}: has {volumes} volumes, the design has {per_session} trials per "
                             f"session ({root / DESIGN})")
    tenk = np.concatenate([design.masterordering[(s - 1) * per_session:s * per_session] for s in sessions])
    images = design.subjectim[subject - 1, tenk - 1]
    brick = root / BRICK
    check_brick(brick, int(max(images.max(), design.sharedix.max())))
    stim_info = root / STIM_INFO
    captions = raw.get("captions") or []
    captions = [captions] if isinstance(captions, str) else captions
    if not isinstance(captions, list):
        raise InputError(f"{source}: 'captions' must be a COCO captions JSON or a list of them")
    caption_files = tuple(_resolve(source.parent, c) for c in captions)
    for path in caption_files:
        if not path.is_file():
            raise InputError(f"{path}: not found (COCO captions, named by 'captions' in {source})")
    caption_of: dict[int, str] = {}
    if caption_files:
        if not stim_info.is_file():
            raise InputError(f"{stim_info}: not found (needed for the COCO ids of the images to caption)")
        coco = read_coco_ids(stim_info)
        used = sorted(set(images.tolist()))
        unknown = [k for k in used if k not in coco]
        if unknown:
            raise InputError(f"{stim_info}: no row for NSD image {unknown[0]} (nsdId {unknown[0] - 1})")
        caption_of = read_captions(caption_files, {k: coco[k] for k in used})
    return NSDSource(root=root, subject=subject, space=space, roi=roi, glm=glm, sessions=tuple(sessions),
                     available=available, design=root / DESIGN, stim_info=stim_info if stim_info.is_file() else None,
                     roi_path=roi_path, betas=tuple(found[s] for s in sessions), brick=brick,
                     trials_per_session=per_session, images=tuple(int(v) for v in images),
                     shared=frozenset(int(v) for v in design.sharedix), captions=caption_files,
                     caption_of=caption_of)
