"""Volumes: NIfTI and DICOM reading agree, RAS reorientation, windows, slice modes, bad files."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from clipsuite.core.errors import InputError
from clipsuite.medical import synthetic
from clipsuite.medical.volumes import (
    ClipInputs,
    aggregate,
    apply_window,
    evenly_spaced,
    load_volume,
    parse_window,
    volume_to_rgb,
)


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    return synthetic.phantom_volume("chest", "tumor", "left", (40, 36, 20), seed=2)


def test_nifti_lps_file_is_reoriented_to_ras(tmp_path: Path, phantom: np.ndarray) -> None:
    ras = load_volume(synthetic.write_nifti(tmp_path / "ras.nii.gz", phantom, orientation="RAS"))
    lps_path = synthetic.write_nifti(tmp_path / "lps.nii.gz", phantom, orientation="LPS")
    assert nib.aff2axcodes(nib.load(str(lps_path)).affine) == ("L", "P", "S")
    lps = load_volume(lps_path)
    np.testing.assert_array_equal(ras.data, lps.data)
    np.testing.assert_allclose(ras.affine, lps.affine)
    assert ras.spacing == pytest.approx((1.0, 1.0, 2.5))


def test_dicom_series_matches_nifti_and_sorts_by_position(tmp_path: Path, phantom: np.ndarray) -> None:
    synthetic.write_dicom_series(tmp_path / "series", phantom, shuffle=True)
    dicom = load_volume(tmp_path / "series")
    nifti = load_volume(synthetic.write_nifti(tmp_path / "v.nii.gz", phantom))
    # stored as uint16 with intercept -1024, so only air noise below -1024 is clipped
    inside = nifti.data > -1000
    np.testing.assert_allclose(dicom.data[inside], nifti.data[inside], atol=0.5)
    np.testing.assert_allclose(dicom.affine, nifti.affine, atol=1e-6)


def test_lesion_side_shows_on_the_viewers_right_for_a_left_lesion(tmp_path: Path, phantom: np.ndarray) -> None:
    volume = load_volume(synthetic.write_nifti(tmp_path / "v.nii.gz", phantom, orientation="LPS"))
    k = synthetic.lesion_slice(phantom, synthetic.LESION_HU["tumor"])
    rgb, _ = volume_to_rgb(volume, slices=[k], window="soft-tissue")
    grey = rgb[0, 0]
    lesion = (grey > 0.7) & (grey < 0.95)  # tumor (160 HU) is bright but below bone
    columns = lesion.nonzero()[:, 1].float()
    assert columns.numel() > 0 and columns.mean() > grey.shape[1] / 2  # patient's left = viewer's right


def test_windows_and_modes(tmp_path: Path, phantom: np.ndarray) -> None:
    volume = load_volume(synthetic.write_nifti(tmp_path / "v.nii.gz", phantom))
    assert parse_window("soft-tissue").a_min == -135 and parse_window("brain").a_max == 80
    custom = apply_window(np.array([-200.0, 0.0, 200.0]), "-100,100")
    assert custom.tolist() == [0.0, 0.5, 1.0]
    mr = apply_window(np.arange(101, dtype=np.float32), "percentile:10,90")
    assert float(mr[10]) == pytest.approx(0.0) and float(mr[90]) == pytest.approx(1.0)
    single, idx = volume_to_rgb(volume, n=4, mode="slice")
    assert single.shape == (4, 3, 36, 40) and idx == evenly_spaced(20, 4)
    assert torch.equal(single[:, 0], single[:, 2])
    stacked, _ = volume_to_rgb(volume, slices=[5], mode="2.5d")
    neighbours, _ = volume_to_rgb(volume, slices=[4, 5, 6], mode="slice")
    assert torch.allclose(stacked[0], neighbours[:, 0])
    three, _ = volume_to_rgb(volume, slices=[5], mode="windows")
    assert not torch.allclose(three[0, 0], three[0, 1])  # soft tissue vs lung window differ
    coronal, _ = volume_to_rgb(volume, axis="coronal", n=2)
    assert coronal.shape == (2, 3, 20, 40)
    pixels = ClipInputs(64, [0.5] * 3, [0.5] * 3)(single)
    assert pixels.shape == (4, 3, 64, 64) and pixels.min() >= -1.0001 and pixels.max() <= 1.0001


def test_aggregation_mean_and_max() -> None:
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8]])
    assert aggregate(scores, "mean").argmax() == 0
    peak = aggregate(scores, "max")
    assert peak.sum() == pytest.approx(1.0) and peak[1] > 0.45
    with pytest.raises(InputError, match="aggregation"):
        aggregate(scores, "median")  # type: ignore[arg-type]


def test_bad_volumes_give_one_clear_line(tmp_path: Path, phantom: np.ndarray) -> None:
    nan = phantom.copy()
    nan[0, 0, 0] = np.nan
    path = synthetic.write_nifti(tmp_path / "nan.nii.gz", nan, dtype=np.float32)
    with pytest.raises(InputError, match="NaN"):
        load_volume(path)
    four_d = tmp_path / "4d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), str(four_d))
    with pytest.raises(InputError, match=r"4D file of 3 volumes; choose one .*--volume-index 0\.\.2"):
        load_volume(four_d)
    two_d = tmp_path / "2d.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), str(two_d))
    with pytest.raises(InputError, match="expected a 3D volume"):
        load_volume(two_d)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti at all")
    with pytest.raises(InputError, match="broken.nii.gz"):
        load_volume(broken)
    mixed = tmp_path / "mixed"
    synthetic.write_dicom_series(mixed / "a", phantom[:, :, :3])
    synthetic.write_dicom_series(mixed / "b", phantom[:, :, :3])
    for file in (mixed / "b").iterdir():
        file.rename(mixed / "a" / f"b_{file.name}")
    with pytest.raises(InputError, match="2 DICOM series"):
        load_volume(mixed / "a")
    with pytest.raises(InputError, match="window"):
        parse_window("hot-pink")
    with pytest.raises(InputError, match="outside the volume"):
        volume_to_rgb(load_volume(synthetic.write_nifti(tmp_path / "ok.nii.gz", phantom)), slices=[99])
