"""Small, realistic medical data in the real on-disk formats, for tests and the demo.

Phantoms are CT-like volumes in Hounsfield units (air -1000, soft tissue ~40, lung ~-800, bone ~700)
with simple anatomy (a body ellipse with lungs and a spine, a skull with brain, an abdomen with a
liver) and optional lesions on the patient's left or right. Arrays are kept in RAS index order
(i -> patient's Right, j -> Anterior, k -> Superior); writers convert to the file's own convention.

Writers: NIfTI (nibabel), a DICOM CT series (pydicom, LPS patient coordinates; uncompressed or in a
lossless compressed transfer syntax as PACS exports use: RLE, JPEG-LS, JPEG 2000), 2D slices in a
Dassl split JSON with an LLM-style sentence file per class, VQA-RAD and SLAKE question files, and a
ROCO-layout caption CSV.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, cast

import numpy as np

ORGANS = ("chest", "head", "abdomen")
ALL_ORGANS = (*ORGANS, "pelvis")
VQA_RAD_ORGAN = {"chest": "CHEST", "head": "HEAD", "abdomen": "ABD", "pelvis": "PELVIS"}
ORGAN_ANSWER = {"chest": "lung", "head": "brain", "abdomen": "liver", "pelvis": "pelvis"}
ORGAN_CLASSES = {"brain": "head", "lung": "chest", "liver": "abdomen", "pelvis": "pelvis"}
LESION_HU = {"tumor": 160.0, "cyst": -150.0, "calcification": 900.0}
SLICE_CLASSES = ("normal", "tumor", "cyst", "calcification")


# ---- phantoms ---------------------------------------------------------------------------------
def _grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised coordinates in [-1, 1] along each RAS axis."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    return cast(tuple[np.ndarray, np.ndarray, np.ndarray], np.meshgrid(*axes, indexing="ij"))  # three axes


def phantom_volume(organ: str = "chest", lesion: str | None = "tumor", side: str = "left",
                   shape: tuple[int, int, int] = (48, 48, 24), seed: int = 0,
                   lesion_radius: float = 0.16) -> np.ndarray:
    """A CT-like volume in HU, RAS index order. ``side`` is the patient's side of the lesion."""
    if organ not in ALL_ORGANS:
        raise ValueError(f"organ must be one of {ALL_ORGANS}, got {organ!r}")
    rng = np.random.default_rng(seed)
    x, y, z = _grid(shape)
    vol = np.full(shape, -1000.0, dtype=np.float32)

    def jitter(s: float) -> float:
        return 1.0 + rng.uniform(-s, s)

    if organ == "head":
        r = np.sqrt((x / (0.8 * jitter(0.05))) ** 2 + (y / (0.9 * jitter(0.05))) ** 2 + (z / 1.3) ** 2)
        vol[r < 1.0] = 700.0                  # skull
        vol[r < 0.88] = 35.0                  # brain
        host = r < 0.8
    else:
        body = (x / (0.9 * jitter(0.05))) ** 2 + (y / (0.65 * jitter(0.05))) ** 2 < 1.0
        vol[body] = 40.0
        spine = (x ** 2 + (y + 0.45) ** 2) < 0.12 ** 2
        vol[spine] = 700.0
        if organ == "pelvis":  # femoral heads on both sides and a bladder in front
            for cx in (-0.6, 0.6):
                vol[((x - cx) ** 2 + (y + 0.05) ** 2) < 0.17 ** 2] = 700.0
            vol[((x / 0.3) ** 2 + ((y - 0.3) / 0.22) ** 2) < 1.0] = 5.0
            host = body & ~spine
        elif organ == "chest":
            for cx in (-0.42, 0.42):
                lung = ((x - cx) / 0.3) ** 2 + ((y - 0.05) / 0.42) ** 2 < 1.0
                vol[lung] = -820.0
            host = vol < -700
        else:
            liver = ((x - 0.35) / 0.4) ** 2 + ((y - 0.1) / 0.35) ** 2 < 1.0  # the liver sits on the right
            vol[liver] = 65.0
            host = body & ~spine
    if lesion is not None:
        if lesion not in LESION_HU:
            raise ValueError(f"lesion must be one of {tuple(LESION_HU)} or None, got {lesion!r}")
        cx = (0.42 if side == "right" else -0.42) + rng.uniform(-0.06, 0.06)
        cy, cz = rng.uniform(-0.1, 0.2), rng.uniform(-0.3, 0.3)
        radius = lesion_radius * jitter(0.15)
        if lesion == "calcification":  # a cluster of small dense dots
            for _ in range(5):
                dx, dy = rng.uniform(-radius, radius, size=2)
                dot = ((x - cx - dx) ** 2 + (y - cy - dy) ** 2 + ((z - cz) / 2) ** 2) < (radius / 3.5) ** 2
                vol[dot] = LESION_HU[lesion]
        else:
            ball = ((x - cx) ** 2 + (y - cy) ** 2 + ((z - cz) / 2) ** 2) < radius ** 2
            vol[ball & (host | (vol > -900))] = LESION_HU[lesion]
    vol += rng.normal(0.0, 12.0, size=shape).astype(np.float32)  # scanner noise
    return vol


def lesion_slice(hu: np.ndarray, lesion_value: float | None = None) -> int:
    """Axial index through the lesion's centre (the slice differing most from the lesion-free median)."""
    if lesion_value is None:
        return hu.shape[2] // 2
    score = (np.abs(hu - lesion_value) < 60).sum(axis=(0, 1))
    return int(score.argmax()) if score.max() > 0 else hu.shape[2] // 2


def axial_display(hu_ras: np.ndarray, k: int) -> np.ndarray:
    """Axial slice in radiological display: anterior up, the patient's right on the viewer's left."""
    return hu_ras[::-1, ::-1, k].T


def window_uint8(hu: np.ndarray, a_min: float = -135.0, a_max: float = 215.0) -> np.ndarray:
    return (np.clip((hu - a_min) / (a_max - a_min), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ---- file writers -----------------------------------------------------------------------------
def write_nifti(path: str | Path, hu_ras: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 2.5),
                orientation: str = "RAS", dtype: Any = np.int16) -> Path:
    """Save an RAS-ordered volume as NIfTI; ``orientation="LPS"`` stores it flipped (as DICOM-converted
    files often are) with an affine saying so, so readers must reorient."""
    import nibabel as nib

    data = np.asarray(hu_ras)
    affine = np.diag([*spacing, 1.0]).astype(np.float64)
    affine[:3, 3] = [-(n - 1) * s / 2 for n, s in zip(data.shape[:3], spacing)]
    if orientation.upper() == "LPS":
        data = data[::-1, ::-1]
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        affine = affine @ np.array([[1, 0, 0, data.shape[0] - 1], [0, 1, 0, data.shape[1] - 1],
                                    [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float64) @ flip
    elif orientation.upper() != "RAS":
        raise ValueError("orientation must be RAS or LPS")
    if np.issubdtype(np.dtype(dtype), np.integer) and np.isfinite(data).all():
        data = np.round(data)
    image = nib.Nifti1Image(np.ascontiguousarray(data).astype(dtype), affine)
    image.header.set_xyzt_units("mm")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


# lossless transfer syntaxes the writer can compress to, and the encoder pydicom uses for each: its own
# RLE encoder, pyjpegls (CharLS) and pylibjpeg-openjpeg, all installed with this package
DICOM_COMPRESSIONS: dict[str, tuple[str, str]] = {
    "rle": ("1.2.840.10008.1.2.5", "pydicom"),
    "jpeg-ls": ("1.2.840.10008.1.2.4.80", "pyjpegls"),
    "jpeg2000": ("1.2.840.10008.1.2.4.90", "pylibjpeg"),
}


def write_dicom_series(folder: str | Path, hu_ras: np.ndarray,
                       spacing: tuple[float, float, float] = (1.0, 1.0, 2.5), series_uid: str | None = None,
                       seed: int = 0, shuffle: bool = True, compression: str | None = None) -> list[Path]:
    """One CT slice per file (LPS patient coordinates, rescale intercept -1024), in a shuffled file order
    so that readers must sort by position rather than by name. ``compression``: None (Explicit VR Little
    Endian) or a lossless transfer syntax of ``DICOM_COMPRESSIONS`` (``rle``, ``jpeg-ls``, ``jpeg2000``)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    if compression is not None and compression not in DICOM_COMPRESSIONS:
        raise ValueError(f"compression must be None or one of {', '.join(DICOM_COMPRESSIONS)}, got {compression!r}")
    if compression == "jpeg2000" and min(hu_ras.shape[:2]) < 32:  # OpenJPEG's encoder fails on it, unexplained
        raise ValueError(f"jpeg2000 needs slices of at least 32 x 32 pixels (its six resolution levels), got "
                         f"{hu_ras.shape[0]} x {hu_ras.shape[1]}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    frame_uid = generate_uid()
    n_i, n_j, n_k = hu_ras.shape
    order = np.random.default_rng(seed).permutation(n_k) if shuffle else np.arange(n_k)
    paths = []
    for file_index, k in enumerate(order):
        pixels = axial_display(hu_ras, int(k))  # rows -> posterior, columns -> patient's left (LPS)
        stored = np.clip(np.round(pixels + 1024.0), 0, 4095).astype(np.uint16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientName, ds.PatientID = "CT", "Phantom^Synthetic", "SYN0001"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.SeriesNumber, ds.InstanceNumber = 1, int(k) + 1
        # first voxel (i = n_i-1, j = n_j-1) in LPS: x_L = -x_R, y_P = -y_A
        x_r0 = (n_i - 1) * spacing[0] / 2
        y_a0 = (n_j - 1) * spacing[1] / 2
        z = -(n_k - 1) * spacing[2] / 2 + int(k) * spacing[2]
        ds.ImagePositionPatient = [-x_r0, -y_a0, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing[1], spacing[0]]  # row spacing (y), column spacing (x)
        ds.SliceThickness = spacing[2]
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.PixelData = stored.tobytes()
        if compression is not None:
            syntax, plugin = DICOM_COMPRESSIONS[compression]
            # the same SOP instance, only encoded differently: keep its UID (as a PACS export does)
            ds.compress(syntax, stored, encoding_plugin=plugin, generate_instance_uid=False)
        path = folder / f"IM{file_index:04d}.dcm"
        ds.save_as(str(path), enforce_file_format=True)
        paths.append(path)
    return paths


def _save_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# ---- datasets ---------------------------------------------------------------------------------
def write_volume_dataset(root: str | Path, n: int = 6, shape: tuple[int, int, int] = (48, 48, 24),
                         seed: int = 0) -> list[dict[str, Any]]:
    """``root/volumes/vol_XXX.nii.gz`` (alternately RAS and LPS on disk) + ``root/volumes.json``
    listing organ, lesion, side and the lesion's axial slice for each."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    entries = []
    for index in range(n):
        organ = ORGANS[index % len(ORGANS)]
        lesion = "tumor" if index % 2 == 0 else None
        side = str(rng.choice(["left", "right"]))
        hu = phantom_volume(organ, lesion, side, shape, seed=seed * 1000 + index)
        name = f"volumes/vol_{index:03d}.nii.gz"
        write_nifti(root / name, hu, orientation="RAS" if index % 2 == 0 else "LPS")
        entries.append({"file": name, "organ": organ, "lesion": lesion, "side": side if lesion else None,
                        "lesion_slice": lesion_slice(hu, LESION_HU[lesion] if lesion else None)})
    (root / "volumes.json").write_text(json.dumps(entries, indent=1))
    return entries


def class_sentences(classname: str) -> list[str]:
    """LLM-style descriptions (BiomedCoOp reads 50 per class; a handful is enough offline). Short, so
    that they fit the tiny models' 32-token text context."""
    look = {"normal": "uniform tissue", "tumor": "a bright round mass", "cyst": "a dark round spot",
            "calcification": "small white dots", "brain": "bone around the brain",
            "lung": "two dark lungs", "liver": "a large organ on the right", "pelvis": "two round bones"}
    what = look.get(classname, classname)
    return [f"a ct scan showing {classname}.", f"a radiology image of {classname}.", f"{classname}: {what}.",
            f"a ct with {what}.", f"medical image of {classname}.", f"this scan shows {what}."]


def write_slice_dataset(root: str | Path, n_per_class: int = 12, image_size: int = 64, seed: int = 0,
                        task: str = "organ") -> Path:
    """2D CT slices in the Dassl split JSON layout ``{"train"|"val"|"test": [[rel_path, label, classname],
    ...]}`` at ``root/split_synthetic.json``, plus ``root/descriptions.json`` (class -> sentences) as
    BiomedCoOp's LLM prompt file. ``task``: ``organ`` (brain, lung, liver, pelvis; half the slices
    carry a tumor) or ``lesion`` (abdomen slices: normal, tumor, cyst, calcification)."""
    root = Path(root)
    if task not in ("organ", "lesion"):
        raise ValueError("task must be 'organ' or 'lesion'")
    classes = tuple(ORGAN_CLASSES) if task == "organ" else SLICE_CLASSES
    splits: dict[str, list[list[Any]]] = {"train": [], "val": [], "test": []}
    shape = (image_size, image_size, 8)
    for label, classname in enumerate(classes):
        for index in range(n_per_class):
            item_seed = seed * 100_000 + label * 1000 + index
            side = "left" if index % 2 == 0 else "right"
            if task == "organ":
                organ, lesion = ORGAN_CLASSES[classname], ("tumor" if index % 3 == 0 else None)
            else:
                organ, lesion = "abdomen", (None if classname == "normal" else classname)
            hu = phantom_volume(organ, lesion, side, shape, seed=item_seed, lesion_radius=0.22)
            k = lesion_slice(hu, LESION_HU[lesion] if lesion else None)
            rel = f"images/{classname}/{classname}_{index:03d}.png"
            _save_png(root / rel, window_uint8(axial_display(hu, k)))
            split = "train" if index < n_per_class // 2 else ("val" if index < 3 * n_per_class // 4 else "test")
            splits[split].append([rel, label, classname])
    (root / "split_synthetic.json").write_text(json.dumps(splits, indent=1))
    (root / "descriptions.json").write_text(json.dumps({c: class_sentences(c) for c in classes}, indent=1))
    return root / "split_synthetic.json"


def _vqa_items(organ: str, lesion: bool, side: str) -> list[tuple[str, str, str, str]]:
    """(question, answer, answer_type, question_type) about one image."""
    items = [("is there a lesion?", "yes" if lesion else "no", "CLOSED", "PRES"),
             ("what organ is shown in this image?", ORGAN_ANSWER[organ], "OPEN", "ORGAN")]
    if lesion:
        items += [("which side is the lesion on?", side, "OPEN", "POS"),
                  ("is the lesion on the left?", "yes" if side == "left" else "no", "CLOSED", "POS")]
    return items


def write_vqa_rad(root: str | Path, n_images: int = 40, image_size: int = 64, seed: int = 0,
                  test_fraction: float = 0.25) -> Path:
    """VQA-RAD layout: ``root/VQA_RAD Image Folder/synpic*.jpg`` and ``root/VQA_RAD Dataset Public.json``
    (qid, image_name, image_organ, question, answer, answer_type, question_type, phrase_type; test
    questions carry phrase_type ``test_freeform``)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    records, qid = [], 0
    n_test = max(1, round(n_images * test_fraction))
    for index in range(n_images):
        organ = ORGANS[index % len(ORGANS)]
        lesion = bool(rng.random() < 0.5)
        side = str(rng.choice(["left", "right"]))
        hu = phantom_volume(organ, "tumor" if lesion else None, side, (image_size, image_size, 8),
                            seed=seed * 10_000 + index, lesion_radius=0.3)
        k = lesion_slice(hu, LESION_HU["tumor"] if lesion else None)
        name = f"synpic{50000 + index}.jpg"
        array = window_uint8(axial_display(hu, k), -160.0, 240.0)
        from PIL import Image

        (root / "VQA_RAD Image Folder").mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(root / "VQA_RAD Image Folder" / name, quality=95)
        phrase = "test_freeform" if index >= n_images - n_test else "freeform"
        for question, answer, answer_type, qtype in _vqa_items(organ, lesion, side):
            qid += 1
            records.append({"qid": qid, "image_name": name, "image_organ": VQA_RAD_ORGAN[organ],
                            "question": question, "answer": answer, "answer_type": answer_type,
                            "question_type": qtype, "phrase_type": phrase})
    path = root / "VQA_RAD Dataset Public.json"
    path.write_text(json.dumps(records, indent=1))
    return path


def write_slake(root: str | Path, n_images: int = 12, image_size: int = 64, seed: int = 0) -> Path:
    """SLAKE layout: ``root/imgs/xmlabN/source.jpg`` and ``root/{train,validate,test}.json`` with
    English and Chinese questions (q_lang en / zh)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "validate": [], "test": []}
    qid = 0
    from PIL import Image

    for index in range(n_images):
        organ = ORGANS[index % len(ORGANS)]
        lesion = bool(rng.random() < 0.5)
        side = str(rng.choice(["left", "right"]))
        hu = phantom_volume(organ, "tumor" if lesion else None, side, (image_size, image_size, 8),
                            seed=seed * 10_000 + 777 + index, lesion_radius=0.22)
        name = f"xmlab{index}/source.jpg"
        (root / "imgs" / f"xmlab{index}").mkdir(parents=True, exist_ok=True)
        k = lesion_slice(hu, LESION_HU["tumor"] if lesion else None)
        Image.fromarray(window_uint8(axial_display(hu, k))).save(root / "imgs" / name, quality=95)
        split = "train" if index < n_images * 0.6 else ("validate" if index < n_images * 0.8 else "test")
        for question, answer, answer_type, qtype in _vqa_items(organ, lesion, side):
            for lang, text in (("en", question), ("zh", "这张图片里有什么?")):
                qid += 1
                splits[split].append({"img_id": index, "img_name": name, "question": text, "answer": answer,
                                      "q_lang": lang, "answer_type": answer_type, "content_type": qtype,
                                      "modality": "CT", "location": VQA_RAD_ORGAN[organ].title(),
                                      "base_type": "vqa", "qid": qid})
    for split, records in splits.items():
        (root / f"{split}.json").write_text(json.dumps(records, ensure_ascii=False, indent=1))
    return root


def write_roco(root: str | Path, n: int = 24, image_size: int = 64, seed: int = 0) -> Path:
    """ROCO layout: ``root/images/ROCO_XXXXX.jpg`` and ``root/traindata.csv`` with ``id,name,caption``.
    Findings cycle through the slice classes so captions teach the words the other tasks use."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(n):
        organ = ORGANS[(index // len(SLICE_CLASSES)) % len(ORGANS)]
        finding = SLICE_CLASSES[index % len(SLICE_CLASSES)]
        lesion = None if finding == "normal" else finding
        side = str(rng.choice(["left", "right"]))
        hu = phantom_volume(organ, lesion, side, (image_size, image_size, 8),
                            seed=seed * 10_000 + 333 + index, lesion_radius=0.22)
        k = lesion_slice(hu, LESION_HU[lesion] if lesion else None)
        name = f"ROCO_{index:05d}.jpg"
        Image.fromarray(window_uint8(axial_display(hu, k))).save(root / "images" / name, quality=95)
        text = f"{finding} tissue, no lesion" if lesion is None else f"{finding} on the {side} side"
        rows.append({"id": f"ROCO_{index:05d}", "name": name,
                     "caption": f"ct of the {ORGAN_ANSWER[organ]} showing {text}."})
    path = root / "traindata.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "name", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return path
