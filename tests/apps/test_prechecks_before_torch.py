"""Mistakes answered before torch (issue 17, section 3): a band a raster lacks, a corrupt or non-raster TIFF,
a folder without scenes, a bad --resolution, a tile larger than the raster, a mask/betas grid mismatch, an
unreadable person picture, malformed keypoint JSON and an uncached model offline each give one error line
and exit 2 in a fresh process that never imported torch or open_clip. Timings: shared/bench/bench_cli_startup.py."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

REMOTE, BRAIN, GENERATIVE = "clipsuite.remote_app.main", "clipsuite.brain_app.main", "clipsuite.generative_app.main"
MEDICAL = "clipsuite.medical_app.main"


_probe: Any = None  # the shared fresh-process runner (tests/conftest.py: before_torch)


@pytest.fixture(autouse=True)
def _shared_probe(before_torch: Any) -> None:
    global _probe
    _probe = before_torch


def _run(module: str, argv: list[str], hf_home: Path, env: dict[str, str] | None = None,
         ) -> tuple[dict[str, object], list[str]]:
    """Offline, with an empty Hugging Face cache of its own (weights cached on this machine do not count)."""
    return _probe(module, argv, env={"HF_HOME": str(hf_home), **(env or {})})  # type: ignore[no-any-return]


def _refused(module: str, argv: list[str], hf_home: Path, *expected: str) -> str:
    report, lines = _run(module, argv, hf_home)
    assert report == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def rasters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rasters")
    with rasterio.open(root / "scene.tif", "w", driver="GTiff", width=64, height=64, count=3, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10)) as dataset:
        dataset.write(np.random.default_rng(0).integers(1, 3000, (3, 64, 64), dtype=np.uint16))
        dataset.descriptions = ("B04", "B03", "B02")
    (root / "corrupt.tif").write_bytes(b"II*\x00" + b"garbage" * 20)  # a TIFF signature, no directory
    (root / "notes.tif").write_text("not a raster")
    (root / "empty").mkdir()
    return root


@pytest.mark.parametrize(("argv", "expected"), [
    (["--bands", "B08"], ["no band named 'B08'", "bands: B04, B03, B02"]),
    (["--bands", "4,3,2"], ["band 4 requested but the raster has 3 band(s)"]),
    (["--resolution", "-10"], ["--resolution -10: must be a positive ground size"]),
    (["--tile-size", "512"], ["a 512 px tile does not fit the raster (64 x 64 px", "give --tile-size 64 or less"]),
    (["--tile-size", "64", "--resolution", "20"], ["(32 x 32 px at 20 units per pixel", "--tile-size 32"]),
], ids=["band-name", "band-index", "resolution", "tile-size", "tile-size-at-resolution"])
def test_remote_index_refuses_from_headers(rasters: Path, tmp_path: Path, argv: list[str],
                                           expected: list[str]) -> None:
    line = _refused(REMOTE, ["index", str(rasters / "scene.tif"), "-o", str(tmp_path / "idx"), *argv], tmp_path,
                    *expected)
    assert "scene.tif" in line or "--resolution" in line
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize(("name", "expected"), [
    ("corrupt.tif", "not a readable raster"),
    ("notes.tif", "not a readable raster"),
    ("empty", "no raster files"),
])
def test_remote_index_refuses_unreadable_inputs(rasters: Path, tmp_path: Path, name: str, expected: str) -> None:
    _refused(REMOTE, ["index", str(rasters / name), "-o", str(tmp_path / "idx")], tmp_path, name, expected)


def test_remote_uncached_preset_offline_offers_the_multilingual_offline_model(rasters: Path, tmp_path: Path) -> None:
    line = _refused(REMOTE, ["index", str(rasters / "scene.tif"), "-o", str(tmp_path / "idx"), "--tile-size", "64",
                             "--model", "rs-m-clip"], tmp_path,
                    "joaodaniel/RS-M-CLIP", "not in the local cache", "--model tiny-multilingual")
    assert "--model tiny " not in line
    _refused(REMOTE, ["classify", str(rasters), "--model", "remoteclip-b32"], tmp_path,
             "RemoteCLIP-ViT-B-32.pt", "--model tiny-multilingual")


def test_pubmedclip_offline_names_the_transformers_files(tmp_path: Path) -> None:
    picture = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (16, 16)).save(picture)
    line = _refused(MEDICAL, ["classify", str(picture), "--classes", "a,b", "--model", "pubmedclip"], tmp_path,
                    "pubmed-clip-vit-base-patch32/config.json", "--model tiny")
    assert "open_clip_config.json" not in line


@pytest.fixture(scope="module")
def subject(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import nibabel as nib

    from clipsuite.brain import synthetic

    config = Path(synthetic.make_subject(tmp_path_factory.mktemp("subject"), n_train=20, n_test=6, n_sessions=2))
    data = json.loads(config.read_text())
    affine = nib.load(str(config.parent / data["mask"])).affine
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), affine), str(config.parent / "small_mask.nii.gz"))
    (config.parent / "mismatch.json").write_text(json.dumps(dict(data, mask="small_mask.nii.gz")))
    return config


@pytest.mark.parametrize("command", ["fit", "encode"])
def test_brain_grid_mismatch_and_uncached_default_model(subject: Path, tmp_path: Path, command: str) -> None:
    _refused(BRAIN, [command, str(subject.parent / "mismatch.json"), "-o", str(tmp_path / "out"), "--model", "tiny"],
             tmp_path, "betas_session01.nii.gz: volume grid", "differs from the mask's (5, 5, 5)")
    _refused(BRAIN, [command, str(subject), "-o", str(tmp_path / "out")], tmp_path,
             "weights for 'ViT-B-32' with pretrained 'openai'", "timm/vit_base_patch32_clip_224.openai",
             "--model tiny to try the command offline")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("sample")
    Image.new("RGB", (48, 64), (200, 10, 10)).save(root / "person.png")
    Image.new("L", (48, 64), 255).save(root / "mask.png")
    (root / "broken.jpg").write_text("not a picture")
    (root / "keypoints.json").write_text("{not json")
    return root


@pytest.mark.parametrize(("person", "extra", "expected"), [
    ("broken.jpg", [], "broken.jpg: not a readable image"),
    ("person.png", ["--keypoints", "keypoints.json"], "keypoints.json: malformed keypoint JSON"),
], ids=["person-picture", "keypoint-json"])
def test_tryon_reads_its_files_before_torch(sample: Path, tmp_path: Path, person: str, extra: list[str],
                                            expected: str) -> None:
    extra = [str(sample / e) if e.endswith(".json") else e for e in extra]
    _refused(GENERATIVE, ["tryon", "--person", str(sample / person), "--garment", str(sample / "person.png"),
                          "--mask", str(sample / "mask.png"), "-o", str(tmp_path / "out.png"), *extra], tmp_path,
             expected)
    assert not (tmp_path / "out.png").exists()


def test_tryon_uncached_clip_offline_speaks_of_clip(sample: Path, tmp_path: Path) -> None:
    """generative names its CLIP model with --clip: the hint says --clip, never a --model it does not have."""
    line = _refused(GENERATIVE, ["tryon", "--person", str(sample / "person.png"), "--garment",
                                 str(sample / "person.png"), "--mask", str(sample / "mask.png"), "-o",
                                 str(tmp_path / "out.png"), "--clip", "ladi-vton-clip"], tmp_path,
                    "CLIP-ViT-H-14-laion2B-s32B-b79K/config.json", "--clip DIR", "--clip tiny-transformers")
    assert "--model" not in line and "--pretrained" not in line


def test_help_is_not_cut_at_80_columns_off_a_terminal(tmp_path: Path) -> None:
    """No terminal and no COLUMNS (a pipe, a file): rich would wrap at 80 and cut 'tiny-multilingual' with '…'."""
    done = subprocess.run([sys.executable, "-m", REMOTE, "index", "--help"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "'tiny-multilingual'" in done.stdout and "…" not in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) == 120
    narrow = subprocess.run([sys.executable, "-m", REMOTE, "index", "--help"], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "COLUMNS": "90", "HF_HOME": str(tmp_path)})
    assert max(len(line) for line in narrow.stdout.splitlines()) == 90  # COLUMNS still decides


def test_open_clip_table_read_without_import_matches_open_clip() -> None:
    """The torch-free reading of open_clip's pretrained table gives what open_clip itself says, for every tag."""
    import open_clip

    from clipsuite.core.weights_precheck import open_clip_table

    table = open_clip_table()
    assert table is not None
    pairs = open_clip.list_pretrained()
    assert {(m, t) for m, tags in table.items() for t in tags} == set(pairs)
    for model, tag in pairs:
        cfg = open_clip.get_pretrained_cfg(model, tag)
        assert {k: table[model][tag].get(k, d) for k, d in (("url", ""), ("hf_hub", ""), ("quick_gelu", False))} == {
            "url": cfg.get("url", ""), "hf_hub": cfg.get("hf_hub", ""), "quick_gelu": cfg.get("quick_gelu", False)}


def test_a_damaged_block_names_gdals_reason(tmp_path: Path) -> None:
    """rasterio says only "Read failed. See previous exception for details."; the line says what failed."""
    from clipsuite.remote.rasters import io_reason

    path = tmp_path / "damaged.tif"
    with rasterio.open(path, "w", driver="GTiff", width=512, height=512, count=1, dtype="uint16", tiled=True,
                       blockxsize=256, blockysize=256, compress="deflate") as dataset:
        dataset.write(np.random.default_rng(0).integers(0, 3000, (1, 512, 512), dtype=np.uint16))
    data = bytearray(path.read_bytes())
    data[len(data) // 3: len(data) // 3 + 3000] = b"\x55" * 3000
    path.write_bytes(bytes(data))
    with rasterio.open(path) as dataset, pytest.raises(rasterio.errors.RasterioIOError) as caught:
        dataset.read()
    assert "See previous exception" in str(caught.value)
    reason = io_reason(caught.value)
    assert "See previous exception" not in reason and "damaged.tif" in reason


def test_diffusers_empty_float32_note_is_dropped() -> None:
    import clipsuite.generative.components  # noqa: F401 - installs the filter

    source = logging.getLogger("diffusers.models.modeling_utils")

    def shown(message: str) -> bool:
        record = source.makeRecord(source.name, logging.WARNING, __file__, 0, message, None, None)
        return bool(source.filter(record))

    assert not shown("There are modules in AutoencoderKL that should be kept in float32: []. Casting ...")
    assert shown("There are modules in AutoencoderKL that should be kept in float32: ['conv_in']. Casting ...")
