"""DICOM files as hospitals export them: which files make a series, and their pixels decoded.

A folder is one series: every DICOM file in it must read and decode. One file named on its own means
its series among its neighbours (same ``SeriesInstanceUID``), and the file the user named decides:
a neighbour that cannot be decoded is left out and named (``Skipped``), as is a neighbour holding the
same image again (same ``SOPInstanceUID``, e.g. the same slice exported in another transfer syntax),
while the named file itself must decode. Compressed transfer syntaxes decode through the plugins
pydicom finds (``docs/medical.md``, "Compressed DICOM"); pydicom's own warnings about oddities it
reads past are silenced, since a user cannot act on them.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipsuite.core.errors import InputError, first_line
from clipsuite.core.skipping import Skipped

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

# 12-bit lossy JPEG: pydicom refuses GDCM for it (wrong values) and Pillow reads 8 bits only, so only
# pylibjpeg-libjpeg decodes it, which is GPLv3 and therefore left to the user to install.
JPEG_EXTENDED_12BIT = "1.2.840.10008.1.2.4.51"


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's warnings (e.g. "Expected explicit VR, but found implicit VR"): it reads past
    these itself, and each came with a Python source line a user cannot act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
        yield


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Decoders written in C (OpenJPEG inside GDCM and pylibjpeg) print their complaints about a damaged
    codestream straight to file descriptor 2; the ``InputError`` that follows says it in one line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 to mute (an embedded interpreter): leave it be
        saved = -1
    if saved < 0:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def looks_dicom(path: Path) -> bool:
    """A ``.dcm`` name or the ``DICM`` preamble (many exports have no suffix)."""
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def dicom_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and looks_dicom(p))
    if not files:
        raise InputError(f"{folder}: no DICOM files in this folder")
    return files


def read_header(file: Path) -> Dataset:
    import pydicom

    try:
        with quiet_pydicom():
            return pydicom.dcmread(str(file), stop_before_pixels=True)
    except Exception as error:  # noqa: BLE001 - readers raise many types; one message for all
        raise InputError(f"{file}: not a readable DICOM file ({first_line(error)})") from None


def decode_pixels(file: Path) -> tuple[np.ndarray, Dataset]:
    """The file's pixel array (YBR turned to RGB, as pydicom does) and its dataset; ``InputError``
    naming the file and the transfer syntax when no installed decoder reads it."""
    import pydicom

    try:
        with quiet_pydicom():
            ds = pydicom.dcmread(str(file))
    except Exception as error:  # noqa: BLE001 - readers raise many types; one message for all
        raise InputError(f"{file}: not a readable DICOM file ({first_line(error)})") from None
    try:
        with quiet_pydicom(), quiet_native_stderr():
            return ds.pixel_array, ds
    except Exception as error:  # noqa: BLE001 - each decoder plugin raises its own types
        raise InputError(f"{file}: cannot decode the pixel data ({_decode_reason(ds, error)})") from None


def _decode_reason(ds: Dataset, error: BaseException) -> str:
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None)
    name = getattr(syntax, "name", None) or str(syntax or "no transfer syntax")
    bits = int(getattr(ds, "BitsStored", 8) or 8)
    if syntax == JPEG_EXTENDED_12BIT and bits > 8:
        return (f"{name}, {bits}-bit: only pylibjpeg-libjpeg decodes it and it is GPLv3, so it is not installed "
                "with clipsuite-medical; `pip install pylibjpeg-libjpeg` to read such files")
    # pydicom puts one line per plugin under a heading; keep them, on one line
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    detail = "; ".join(lines[1:]) if len(lines) > 1 and lines[0].endswith(":") else (lines[0] if lines else "")
    return f"{name}: {detail or type(error).__name__}"


@dataclass
class SeriesFiles:
    """The files of one series with their headers (the named file first) and the files left out."""

    headers: list[tuple[Path, Dataset]]
    left_out: list[Skipped] = field(default_factory=list)


def series_files(path: Path) -> SeriesFiles:
    """A folder: every DICOM file in it, all readable, one series. A file: the file and its neighbours
    of the same ``SeriesInstanceUID`` (neighbours whose header does not read ignored, as strays), or the
    file alone when it names no series. Repeats of one ``SOPInstanceUID`` are left out and named."""
    if path.is_dir():
        headers = [(file, read_header(file)) for file in dicom_files(path)]
        series = {str(getattr(h, "SeriesInstanceUID", "?")) for _, h in headers}
        if len(series) > 1:
            raise InputError(f"{path}: holds {len(series)} DICOM series (mixed SeriesInstanceUID); "
                             "put each series in its own folder, or give one file of the series you want")
        return _without_repeats(headers)
    own = read_header(path)
    uid = getattr(own, "SeriesInstanceUID", None)
    if uid is None:
        return SeriesFiles([(path, own)])
    chosen = [(path, own)]
    for file in dicom_files(path.parent):
        if file.resolve() == path.resolve():
            continue
        try:
            neighbour = read_header(file)
        except InputError:
            continue  # a stray or damaged file beside the series: not known to be of this series
        if getattr(neighbour, "SeriesInstanceUID", None) == uid:
            chosen.append((file, neighbour))
    return _without_repeats(chosen)


def _without_repeats(headers: list[tuple[Path, Dataset]]) -> SeriesFiles:
    """Keep the first file of each SOPInstanceUID: a repeat is the same image again (the same slice
    exported twice, here or in another transfer syntax), not another slice of the volume."""
    seen: dict[str, Path] = {}
    kept, left_out = [], []
    for file, header in headers:
        sop = getattr(header, "SOPInstanceUID", None)
        if sop is not None and str(sop) in seen:
            left_out.append(Skipped(str(file), f"{file.name}: the same image as {seen[str(sop)].name} (one "
                                                "SOPInstanceUID); left out"))
            continue
        if sop is not None:
            seen[str(sop)] = file
        kept.append((file, header))
    return SeriesFiles(kept, left_out)


