"""Compressed DICOM as PACS exports it: every compressed file pydicom ships decodes to its uncompressed
twin's pixels (lossless exactly, lossy within a stated tolerance), the series this project writes in
RLE / JPEG-LS / JPEG 2000 read back exactly, and one named file is read even when a neighbour of its
series is broken (left out, named) while pydicom's warnings stay off the console.

pydicom's test files are used only where the installed wheel holds them: pydicom downloads some on
demand, and tests never download, so a twin that is not in the wheel skips with that reason.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner, Result

from clipsuite.core.errors import InputError
from clipsuite.medical import synthetic
from clipsuite.medical.dicom import decode_pixels
from clipsuite.medical.volumes import load_volume
from clipsuite.medical_app.main import app

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"  # in the wheel: never a download
runner = CliRunner()

# (compressed, uncompressed twin, lossless). The SC_rgb files are one 100 x 100 RGB picture; its
# uncompressed SC_rgb.dcm is a download, so its lossless RLE copy, decoded by pydicom's own RLE code
# (no plugin), is the reference where the wheel lacks the twin.
LOSSLESS_TWINS = [
    ("MR_small_RLE.dcm", "MR_small.dcm"),
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
    ("rtdose_rle.dcm", "rtdose.dcm"),
    ("rtdose_rle_1frame.dcm", "rtdose_1frame.dcm"),
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm"),  # JPEG lossless (process 14): GDCM
    ("SC_rgb_gdcm_KY.dcm", "SC_rgb_rle.dcm"),    # JPEG 2000 (lossless content)
    # lossy JPEG baseline against dcmtk's decode of that very JPEG (SC_rgb_jpeg_dcmd.dcm): exact too
    ("SC_jpeg_no_color_transform.dcm", "SC_rgb_jpeg_dcmd.dcm"),
    ("SC_rgb_jpeg.dcm", "SC_rgb_jpeg_dcmd.dcm"),  # its header lies about the VR (pydicom warns): still read
    ("SC_rgb_rle.dcm", "SC_rgb.dcm"),
    ("SC_rgb_rle_16bit.dcm", "SC_rgb_16bit.dcm"),
    ("SC_rgb_rle_32bit.dcm", "SC_rgb_32bit.dcm"),
    ("SC_rgb_rle_2frame.dcm", "SC_rgb_2frame.dcm"),
    ("SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_16bit_2frame.dcm"),
    ("SC_rgb_rle_32bit_2frame.dcm", "SC_rgb_32bit_2frame.dcm"),
    ("693_J2KI.dcm", "693_UNCI.dcm"),
    ("JPEG2000.dcm", "JPEG2000_UNC.dcm"),
    ("emri_small_RLE.dcm", "emri_small.dcm"),
    ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),
    ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),
]
# lossy: JPEG-LS near-lossless within its NEAR bound (2 here); JPEG baseline within a mean absolute
# error of 3 grey levels of 255 (measured 0.14-2.82; single pixels at the picture's hard colour edges
# differ by up to 77 where the chroma was subsampled)
LOSSY_TWINS = [
    ("SC_rgb_jls_lossy_line.dcm", "SC_rgb_rle.dcm", "max", 2),
    ("SC_rgb_jls_lossy_sample.dcm", "SC_rgb_rle.dcm", "max", 2),
    ("SC_rgb_small_odd_jpeg.dcm", "SC_rgb_small_odd.dcm", "mean", 3),
    ("SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", "mean", 3),
    ("SC_rgb_jpeg_lossy_gdcm.dcm", "SC_rgb_rle.dcm", "mean", 3),
    *[(f"SC_rgb_dcmtk_+eb+{v}.dcm", "SC_rgb_rle.dcm", "mean", 3) for v in ("cr", "cy+n1", "cy+n2", "cy+np", "cy+s2",
                                                                            "cy+s4")],
]
# files of the wheel that no installed decoder reads, and why (each must fail in one line naming it)
UNDECODABLE = {
    "JPGExtended.dcm": "pylibjpeg-libjpeg",      # 12-bit JPEG extended: only the GPLv3 decoder reads it
    "JPEG-lossy.dcm": "pylibjpeg-libjpeg",
    "JPEG2000-embedded-sequence-delimiter.dcm": "JPEG 2000",  # a damaged codestream, on purpose
    "UN_sequence.dcm": "no 'Pixel Data'",        # no pixels at all
}


def wheel_file(name: str) -> Path:
    path = TEST_FILES / name
    if not path.is_file():
        pytest.skip(f"{name} is not in the installed pydicom wheel (pydicom downloads it on demand; tests never "
                    "download)")
    return path


def compressed_in_wheel() -> list[str]:
    names = []
    for path in sorted(TEST_FILES.glob("*.dcm")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        except Exception:  # noqa: BLE001 - files without meta are pydicom's tests of bad input
            continue
        if syntax.is_compressed and syntax != pydicom.uid.DeflatedExplicitVRLittleEndian:
            names.append(path.name)
    return names


def pixels(name: str) -> np.ndarray:
    return decode_pixels(wheel_file(name))[0].astype(np.int64)


@pytest.mark.parametrize(("compressed", "twin"), LOSSLESS_TWINS, ids=[c for c, _ in LOSSLESS_TWINS])
def test_lossless_files_decode_to_their_twins_pixels_exactly(compressed: str, twin: str) -> None:
    np.testing.assert_array_equal(pixels(compressed), pixels(twin))


# each decoder package on its own (pydicom tries GDCM first and falls back to the next on an error):
# removing one must not silently lose a transfer syntax another is meant to cover
PLUGINS = [
    ("MR_small_RLE.dcm", "pydicom"),
    ("MR_small_jpeg_ls_lossless.dcm", "gdcm"),
    ("MR_small_jpeg_ls_lossless.dcm", "pyjpegls"),
    ("MR_small_jp2klossless.dcm", "gdcm"),
    ("MR_small_jp2klossless.dcm", "pylibjpeg"),
    ("MR_small_jp2klossless.dcm", "pillow"),
]


@pytest.mark.parametrize(("compressed", "plugin"), PLUGINS, ids=[f"{c}-{p}" for c, p in PLUGINS])
def test_each_installed_decoder_gives_the_twins_pixels(compressed: str, plugin: str) -> None:
    from pydicom.pixels import pixel_array

    decoded = pixel_array(wheel_file(compressed), decoding_plugin=plugin)
    np.testing.assert_array_equal(decoded, pixels("MR_small.dcm"))


def test_jpeg_lossless_decodes_with_gdcm() -> None:
    """JPEG lossless (process 14) has no decoder but GDCM and the GPLv3 libjpeg."""
    from pydicom.pixels import pixel_array

    decoded = pixel_array(wheel_file("SC_rgb_jpeg_gdcm.dcm"), decoding_plugin="gdcm")
    np.testing.assert_array_equal(decoded, pixels("SC_rgb_rle.dcm"))


@pytest.mark.parametrize(("compressed", "twin", "measure", "bound"), LOSSY_TWINS, ids=[c[0] for c in LOSSY_TWINS])
def test_lossy_files_decode_to_their_twins_pixels_within_tolerance(compressed: str, twin: str, measure: str,
                                                                   bound: int) -> None:
    error = np.abs(pixels(compressed) - pixels(twin))
    assert (error.max() if measure == "max" else error.mean()) <= bound
    assert error.mean() > 0  # lossy indeed: else it belongs with the lossless twins


def test_every_compressed_file_in_the_wheel_decodes_or_says_why_in_one_line(capfd: pytest.CaptureFixture[str],
                                                                           ) -> None:
    names = compressed_in_wheel()
    assert len(names) >= 40 and "MR_small_jpeg_ls_lossless.dcm" in names
    for name in names:
        path = TEST_FILES / name
        if name in UNDECODABLE:
            with pytest.raises(InputError) as caught:
                decode_pixels(path)
            message = str(caught.value)
            assert message.startswith(f"{path}: ") and "\n" not in message and UNDECODABLE[name] in message
            continue
        array, ds = decode_pixels(path)
        frames, samples = int(getattr(ds, "NumberOfFrames", 1) or 1), int(ds.SamplesPerPixel)
        expected = ((frames,) if frames > 1 else ()) + (ds.Rows, ds.Columns) + ((samples,) if samples > 1 else ())
        assert array.shape == expected, name
        assert np.ptp(array) > 0, name  # a picture, not a blank frame
    # OpenJPEG's "Invalid number of tiles ..." on the damaged JPEG 2000 file stays off the console
    assert capfd.readouterr().err == ""


@pytest.fixture(scope="module")
def chest() -> np.ndarray:
    return synthetic.phantom_volume("chest", "tumor", "left", (40, 36, 6), seed=5)


@pytest.mark.parametrize("compression", sorted(synthetic.DICOM_COMPRESSIONS))
def test_a_compressed_series_we_write_reads_back_exactly(tmp_path: Path, chest: np.ndarray, compression: str) -> None:
    plain = load_volume(synthetic.write_dicom_series(tmp_path / "plain", chest)[0].parent)
    files = synthetic.write_dicom_series(tmp_path / compression, chest, compression=compression)
    syntax = pydicom.dcmread(files[0], stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert syntax == synthetic.DICOM_COMPRESSIONS[compression][0] and syntax.is_compressed
    for volume in (load_volume(tmp_path / compression), load_volume(files[2])):  # the folder, one named file
        np.testing.assert_array_equal(volume.data, plain.data)
        np.testing.assert_allclose(volume.affine, plain.affine)
        assert volume.left_out == []


def _break_pixels(file: Path) -> None:
    """A JPEG-LS slice whose codestream is garbage (a damaged transfer): the header still reads."""
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(file)
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + bytes(40)])
    ds.save_as(file)


def test_a_named_file_is_read_when_a_neighbour_of_its_series_does_not_decode(tmp_path: Path,
                                                                              chest: np.ndarray) -> None:
    files = synthetic.write_dicom_series(tmp_path / "s", chest, compression="jpeg-ls", shuffle=False)
    _break_pixels(files[3])
    volume = load_volume(files[0])
    assert volume.shape == (40, 36, 5)
    [skipped] = volume.left_out
    assert skipped.path == str(files[3])
    assert skipped.reason.startswith(f"{files[3]}: cannot decode the pixel data (JPEG-LS Lossless")
    assert skipped.reason.endswith(f"left out of the series of {files[0].name}") and "\n" not in skipped.reason
    whole = load_volume(synthetic.write_dicom_series(tmp_path / "whole", chest, shuffle=False)[0].parent)
    np.testing.assert_array_equal(volume.data[:, :, :3], whole.data[:, :, :3])  # the rest, in order
    np.testing.assert_array_equal(volume.data[:, :, 3:], whole.data[:, :, 4:])
    assert volume.spacing == pytest.approx(whole.spacing)  # the gap does not stretch the slice step
    with pytest.raises(InputError, match=f"^{files[3]}: cannot decode the pixel data"):
        load_volume(files[3])  # the file the user named must decode
    with pytest.raises(InputError, match=f"^{files[3]}: cannot decode"):
        load_volume(tmp_path / "s")  # a folder is the user's series: every file must decode


def test_pydicoms_mr_small_alone_beside_its_copies_and_without_warnings() -> None:
    """The issue's case: MR_small.dcm lies beside the same image in seven other encodings and a truncated
    copy, all one SOPInstanceUID; and beside SC_rgb_jpeg.dcm, whose header makes pydicom warn."""
    with warnings.catch_warnings(record=True) as raw:
        warnings.simplefilter("always")
        pydicom.dcmread(wheel_file("SC_rgb_jpeg.dcm"), stop_before_pixels=True)
    assert any("Expected explicit VR" in str(w.message) for w in raw)  # pydicom does warn on its own
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        volume = load_volume(wheel_file("MR_small.dcm"))
    assert [str(w.message) for w in caught] == []
    assert volume.shape == (64, 64, 1)
    reference = pydicom.dcmread(TEST_FILES / "MR_small.dcm")
    np.testing.assert_array_equal(volume.data[:, :, 0].T, reference.pixel_array.astype(np.float32)[::-1, ::-1])
    left = sorted(Path(s.path).name for s in volume.left_out)
    assert "MR_small_jpeg_ls_lossless.dcm" in left and "MR_truncated.dcm" in left and len(left) == 8
    assert all(s.reason.endswith("the same image as MR_small.dcm (one SOPInstanceUID); left out")
               for s in volume.left_out)


def test_two_volumes_in_one_series_are_refused_in_one_line(tmp_path: Path, chest: np.ndarray) -> None:
    files = synthetic.write_dicom_series(tmp_path / "s", chest, shuffle=False)
    echo = pydicom.dcmread(files[2])
    echo.SOPInstanceUID = echo.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    echo.save_as(tmp_path / "s" / "echo2.dcm")  # a second image at slice 2's position
    with pytest.raises(InputError, match=r"IM0002.dcm and echo2.dcm lie at the same position .* more than one "
                                         "volume"):
        load_volume(files[0])


def invoke(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def test_cli_classifies_the_named_file_and_names_what_it_left_out(tmp_path: Path, chest: np.ndarray) -> None:
    files = synthetic.write_dicom_series(tmp_path / "s", chest, compression="jpeg-ls", shuffle=False)
    _break_pixels(files[3])
    result = invoke("classify", files[0], "--classes", "lung,brain", "--model", "tiny", "--n-slices", "2")
    assert result.exit_code == 0, result.output
    assert "IM0000.dcm" in result.output and "Traceback" not in result.output
    [line] = [line for line in result.output.splitlines() if "skipped" in line]
    assert "skipped 1 file(s)" in line and "IM0003.dcm: cannot decode the pixel data (JPEG-LS" in line
    result = invoke("classify", wheel_file("MR_small.dcm"), "--classes", "lung,brain", "--model", "tiny")
    assert result.exit_code == 0, result.output
    assert "MR_small.dcm" in result.output and "skipped 8 file(s)" in result.output
    assert "UserWarning" not in result.output and "warn_and_log" not in result.output


def test_cli_bad_dicom_is_one_line_naming_the_file_and_exit_2(tmp_path: Path, chest: np.ndarray) -> None:
    files = synthetic.write_dicom_series(tmp_path / "s", chest, compression="jpeg-ls", shuffle=False)
    _break_pixels(files[3])
    twelve_bit = wheel_file("JPGExtended.dcm")
    copy = tmp_path / "one" / "ct.dcm"
    copy.parent.mkdir()
    ds = pydicom.dcmread(twelve_bit)  # a lone CT slice in 12-bit lossy JPEG, given the geometry it lacks
    ds.ImageOrientationPatient, ds.ImagePositionPatient, ds.PixelSpacing = [1, 0, 0, 0, 1, 0], [0, 0, 0], [1, 1]
    ds.save_as(copy)
    (tmp_path / "half.dcm").write_bytes(b"DICM, half a download")
    for path, says in ((files[3], "IM0003.dcm: cannot decode the pixel data (JPEG-LS Lossless"),
                       (tmp_path / "s", "IM0003.dcm: cannot decode the pixel data"),
                       (copy, "ct.dcm: cannot decode the pixel data (JPEG Extended"),
                       (tmp_path / "half.dcm", "half.dcm: not a readable DICOM file")):
        result = invoke("classify", path, "--classes", "lung,brain", "--model", "tiny")
        assert result.exit_code == 2, result.output
        assert says in result.output and "Traceback" not in result.output, result.output
        assert result.output.strip().count("\n") <= 2, result.output  # one line (rich may wrap it once)
