"""Whole folders and real files: a DICOM file means its series, 4D NIfTI volumes, unreadable files in a
folder skipped (listed, counted) or fatal, and a single class refused."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from clipsuite.core.errors import InputError
from clipsuite.medical import synthetic
from clipsuite.medical.classify import VolumeOptions, classify_path, classify_source
from clipsuite.medical.volumes import load_volume, load_volumes
from clipsuite.medical_app.main import app

runner = CliRunner()


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def phantoms() -> tuple[np.ndarray, np.ndarray]:
    return (synthetic.phantom_volume("chest", "tumor", "left", (24, 20, 6), seed=3),
            synthetic.phantom_volume("head", None, "left", (24, 20, 4), seed=4))


@pytest.fixture()
def two_series(tmp_path: Path, phantoms: tuple[np.ndarray, np.ndarray]) -> Path:
    """One folder: a 6-slice chest series, a 4-slice head series, a damaged .dcm and a stray text file."""
    folder = tmp_path / "study"
    synthetic.write_dicom_series(folder / "a", phantoms[0])
    synthetic.write_dicom_series(folder / "b", phantoms[1])
    for series in ("a", "b"):
        for file in (folder / series).iterdir():
            file.rename(folder / f"{series}_{file.name}")
        (folder / series).rmdir()
    (folder / "c_damaged.dcm").write_bytes(b"half a download, not DICOM")
    (folder / "notes.txt").write_text("not DICOM")
    return folder


def test_a_dicom_file_means_its_series(two_series: Path, phantoms: tuple[np.ndarray, np.ndarray],
                                       tmp_path: Path) -> None:
    synthetic.write_dicom_series(tmp_path / "clean_a", phantoms[0])
    clean = load_volume(tmp_path / "clean_a")
    chest = load_volume(two_series / "a_IM0003.dcm")
    assert chest.shape == clean.shape == (24, 20, 6)
    np.testing.assert_array_equal(chest.data, clean.data)
    np.testing.assert_allclose(chest.affine, clean.affine)
    assert chest.source == str(two_series / "a_IM0003.dcm")
    head = load_volume(two_series / "b_IM0000.dcm")
    assert head.shape == (24, 20, 4)
    # a folder keeps today's rules: every file readable, one series
    with pytest.raises(InputError, match="not a readable DICOM file"):
        load_volume(two_series)
    (two_series / "c_damaged.dcm").unlink()
    with pytest.raises(InputError, match="holds 2 DICOM series .*give one file of the series"):
        load_volume(two_series)
    with pytest.raises(InputError, match="c_damaged.dcm: file or folder not found"):
        load_volume(two_series / "c_damaged.dcm")


def test_a_dicom_file_without_series_uid_is_read_alone(tmp_path: Path, phantoms: tuple[np.ndarray, np.ndarray],
                                                       ) -> None:
    import pydicom

    files = synthetic.write_dicom_series(tmp_path / "s", phantoms[0])
    ds = pydicom.dcmread(str(files[0]))
    del ds.SeriesInstanceUID
    ds.save_as(str(files[0]))
    alone = load_volume(files[0])
    assert alone.shape == (24, 20, 1)


def test_4d_nifti_each_volume_or_the_one_chosen(tmp_path: Path) -> None:
    data = np.stack([np.full((6, 5, 4), 100.0 * t, np.float32) for t in range(3)], axis=-1)
    path = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    volumes = load_volumes(path)
    assert [float(v.data.mean()) for v in volumes] == [0.0, 100.0, 200.0]
    assert [Path(v.source).name for v in volumes] == [f"bold.nii.gz[volume {t}]" for t in range(3)]
    assert float(load_volume(path, volume_index=2).data.max()) == 200.0
    assert float(load_volume(path, volume_index=-1).data.max()) == 200.0
    with pytest.raises(InputError, match="volume index 3 is outside the file's 3 volumes"):
        load_volume(path, volume_index=3)
    three_d = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data[..., 1], np.eye(4)), str(three_d))
    assert len(load_volumes(three_d)) == 1 and float(load_volume(three_d, volume_index=0).data.max()) == 100.0
    with pytest.raises(InputError, match="volume index 1 is outside the file's 1 volumes"):
        load_volume(three_d, volume_index=1)


def test_unreadable_files_in_a_folder_are_skipped_or_fatal(tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.new("RGB", (32, 32), (60 * i, 90, 120)).save(images / f"x{i}.png")
    (images / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    found = classify_source(tiny, images, ["lung", "brain"])
    assert [Path(p.source).name for p in found.predictions] == ["x0.png", "x1.png"]
    assert [Path(s.path).name for s in found.skipped] == ["bad.png"]
    with pytest.raises(InputError, match="bad.png"):
        classify_path(tiny, images, ["lung", "brain"])
    volumes = tmp_path / "volumes"
    synthetic.write_nifti(volumes / "a.nii.gz", synthetic.phantom_volume("chest", None, "left", (16, 16, 4)))
    (volumes / "b.nii.gz").write_bytes(b"not gzip")
    found = classify_source(tiny, volumes, ["lung", "brain"], VolumeOptions(n=2))
    assert [Path(p.source).name for p in found.predictions] == ["a.nii.gz"]
    assert len(found.skipped) == 1 and "b.nii.gz: not a readable NIfTI file" in found.skipped[0].reason
    (volumes / "a.nii.gz").unlink()
    with pytest.raises(InputError, match="none of the 1 volumes .* could be read"):
        classify_source(tiny, volumes, ["lung", "brain"])


def test_cli_folder_skip_json_4d_volumes_and_one_class(tmp_path: Path, two_series: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (32, 32), "gray").save(images / "ok.png")
    (images / "bad.png").write_bytes(b"garbage")
    out = tmp_path / "pred.json"
    result = invoke("classify", images, "--classes", "lung,brain", "--model", "tiny", "--json", out)
    assert result.exit_code == 0, result.output
    assert "skipped 1 file(s)" in result.output and "bad.png" in result.output
    entries = json.loads(out.read_text())
    assert [(Path(e["source"]).name, e["error"] is None) for e in entries] == [("ok.png", True), ("bad.png", False)]
    result = invoke("classify", images, "--classes", "lung,brain", "--model", "tiny", "--on-error", "fail")
    assert result.exit_code == 2 and "bad.png" in result.output and "Traceback" not in result.output

    data = np.stack([np.full((8, 8, 4), 50.0 * t, np.float32) for t in range(2)], axis=-1)
    bold = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(bold))
    result = invoke("classify", bold, "--classes", "lung,brain", "--model", "tiny", "--n-slices", "2", "--json", out)
    assert result.exit_code == 0, result.output
    assert [e["source"].rsplit("[", 1)[1] for e in json.loads(out.read_text())] == ["volume 0]", "volume 1]"]
    result = invoke("classify", bold, "--classes", "lung,brain", "--model", "tiny", "--volume-index", "1",
                    "--json", out)
    assert result.exit_code == 0 and [e["source"] for e in json.loads(out.read_text())] == [f"{bold}[volume 1]"]

    result = invoke("classify", two_series / "a_IM0000.dcm", "--classes", "lung,brain", "--model", "tiny",
                    "--n-slices", "2", "--json", out)
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())[0]["slices"]) == 2

    result = invoke("classify", images, "--classes", "lung", "--model", "tiny")
    assert result.exit_code == 2 and "give at least two classes" in result.output


def test_volume_index_on_a_dicom_series_or_images_is_refused(tmp_path: Path, two_series: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    """--volume-index 3 on a DICOM series or an image folder was ignored: the whole series or every image
    was classified as if no volume had been chosen."""
    series = two_series / "a_IM0000.dcm"
    assert float(load_volume(series, volume_index=0).data.max()) == float(load_volume(series).data.max())
    with pytest.raises(InputError, match="volume index 3 is outside"):
        load_volume(series, volume_index=3)
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (32, 32), "gray").save(images / "ok.png")
    with pytest.raises(InputError, match="holds images, not NIfTI volumes"):
        classify_source(tiny, images, ["lung", "brain"], volume_index=0)
    out = tmp_path / "pred.json"
    result = invoke("classify", series, "--classes", "lung,brain", "--model", "tiny", "--volume-index", "3",
                    "--json", out)
    assert result.exit_code == 2 and "volume index 3" in result.output and not out.exists()


def test_a_folder_of_volumes_and_images_is_refused(tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    """Only the NIfTI files of a mixed folder were classified: its images were left out, not even listed."""
    folder = tmp_path / "mixed"
    synthetic.write_nifti(folder / "a.nii.gz", synthetic.phantom_volume("chest", None, "left", (16, 16, 4)))
    assert len(classify_source(tiny, folder, ["lung", "brain"], VolumeOptions(n=2)).predictions) == 1
    (folder / "previews").mkdir()
    Image.new("RGB", (32, 32), "gray").save(folder / "previews" / "a.png")
    with pytest.raises(InputError, match="holds both NIfTI volumes and images"):
        classify_source(tiny, folder, ["lung", "brain"], VolumeOptions(n=2))
