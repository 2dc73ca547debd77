"""clipsuite-generative end to end on micro parts and synthetic VITON-HD files, and its one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from clipsuite.generative_app.main import app

runner = CliRunner()
FAST = ["--steps", "2", "--guidance", "2", "--size", "32x24"]


def _run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args], catch_exceptions=False)


def _sample(root: Path) -> list[str]:
    t = root / "test"
    return ["--person", str(t / "image" / "00006_00.jpg"), "--garment", str(t / "cloth" / "00006_00.jpg"),
            "--parse", str(t / "image-parse-v3" / "00006_00.png"),
            "--keypoints", str(t / "openpose_json" / "00006_00_keypoints.json")]


def _error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert "Traceback" not in result.output
    return lines[-1]


def test_tryon_writes_png_and_grid_and_resizes_a_garment_with_a_note(vitonhd: Path, tmp_path: Path) -> None:
    garment = tmp_path / "big_garment.png"
    Image.open(vitonhd / "test" / "cloth" / "00006_00.jpg").resize((96, 128)).save(garment)
    args = _sample(vitonhd)
    args[3] = str(garment)
    out = tmp_path / "out" / "result.png"
    result = _run("tryon", *args, "-o", str(out), *FAST)
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (24, 32)
    page = out.with_suffix(".html").read_text()
    assert "result_files/person.png" in page and "result.png" in page and "garment resized" in page
    assert "garment resized" in result.output


def test_tryon_bad_inputs_are_one_line_and_leave_nothing(vitonhd: Path, tmp_path: Path) -> None:
    out = tmp_path / "o" / "r.png"
    line = _error(_run("tryon", *_sample(vitonhd), "-o", str(out), "--category", "shoes", *FAST))
    assert "unknown category 'shoes'" in line
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((64, 48), 128, np.uint8)).save(grey)
    args = _sample(vitonhd)
    args[4:6] = ["--mask", str(grey)]
    line = _error(_run("tryon", *args, "-o", str(out), *FAST))
    assert str(grey) in line and "not binary" in line
    bad_points = tmp_path / "kp.json"
    bad_points.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1.0, 2.0, 1.0] * 10}]}))
    args = _sample(vitonhd)
    args[-1] = str(bad_points)
    line = _error(_run("tryon", *args, "-o", str(out), *FAST))
    assert str(bad_points) in line and "10 keypoints" in line
    line = _error(_run("tryon", *_sample(vitonhd), "-o", str(out), "--size", "30x20"))
    assert "multiples of 8" in line
    line = _error(_run("tryon", *_sample(vitonhd), "-o", str(tmp_path / "r.jpg")))
    assert ".png" in line
    assert not out.parent.exists()


def test_train_delta_resume_edit_and_evaluate(vitonhd: Path, tmp_path: Path) -> None:
    mapper = tmp_path / "delta.safetensors"
    images = vitonhd / "train" / "image"
    result = _run("train", "delta", str(images), "-o", str(mapper), "--steps", "4", "--batch-size", "8",
                  "--hidden", "32")
    assert result.exit_code == 0, result.output
    assert "trained 4 steps (" in result.output and "; final loss " in result.output and "resumed" not in result.output
    assert f"mapper: {mapper} (pairs of 6 images)" in result.output
    # --resume remembers the folder, batch size and width: a raised step count is all it needs
    result = _run("train", "delta", "-o", str(mapper), "--steps", "6", "--resume")
    assert result.exit_code == 0, result.output
    assert "resumed at step 4" in result.output and "trained 6 steps (" in result.output
    assert ", 2 of them now; final loss " in result.output
    line = _error(_run("train", "delta", "-o", str(mapper), "--steps", "7", "--hidden", "64", "--resume"))
    assert "--hidden 64 (the run has 32)" in line
    out = tmp_path / "edit" / "car.png"
    result = _run("edit", str(images / "00000_00.jpg"), "a red shirt", "--neutral", "a shirt", "--mapper",
                  str(mapper), "-o", str(out), "--steps", "2", "--size", "32x32")
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (32, 32) and "car_files/input.png" in out.with_suffix(".html").read_text()
    line = _error(_run("edit", str(images / "00000_00.jpg"), "a shirt", "--neutral", "a shirt", "--mapper",
                       str(mapper), "-o", str(tmp_path / "same.png"), "--size", "32x32"))
    assert "same CLIP text embedding" in line
    # evaluate: the photos against themselves; FID/KID/LPIPS networks are absent here
    gen = tmp_path / "gen"
    shutil.copytree(vitonhd / "test" / "image", gen)
    metrics = tmp_path / "m.json"
    result = _run("evaluate", "--real", str(vitonhd / "test" / "image"), "--generated", str(gen), "-o", str(metrics))
    assert result.exit_code == 0, result.output
    table = {m["name"]: m for m in json.loads(metrics.read_text())["metrics"]}
    assert table["ssim"]["value"] == pytest.approx(1.0, abs=1e-5)
    (gen / "00007_00.jpg").unlink()
    line = _error(_run("evaluate", "--real", str(vitonhd / "test" / "image"), "--generated", str(gen)))
    assert "00007_00.jpg: missing" in line


def test_edit_strength_outside_its_range_is_refused_in_one_line_before_torch(vitonhd: Path, tmp_path: Path,
                                                                             before_torch: Any) -> None:
    image = vitonhd / "train" / "image" / "00000_00.jpg"
    mapper = tmp_path / "delta.safetensors"
    mapper.write_bytes(b"not read: the strength is refused first")
    edit = ["edit", str(image), "a red shirt", "--neutral", "a shirt", "--mapper", str(mapper),
            "-o", str(tmp_path / "out.png")]
    # a negative strength is not the opposite edit (the mapper is no odd function): the line says to swap prompts
    answer, lines = before_torch("clipsuite.generative_app.main", [*edit, "--strength", "-0.5"])
    assert answer == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and "--strength -0.5: must be in [0, 2]" in lines[0]
    assert "swap the target and --neutral prompts" in lines[0]
    for value in ("2.5", "nan"):
        line = _error(_run(*edit, "--strength", value))
        assert f"--strength {value}: must be in [0, 2]" in line and "swap" not in line
    assert not (tmp_path / "out.png").exists()


def test_train_tryon_stage_checks_first(vitonhd: Path, tmp_path: Path) -> None:
    line = _error(_run("train", "tryon-stage", "dance", "--data", str(vitonhd), "-o", str(tmp_path / "s.safetensors")))
    assert "unknown stage 'dance'" in line
    out = tmp_path / "warp.safetensors"
    result = _run("train", "tryon-stage", "warping", "--data", str(vitonhd), "-o", str(out), "--steps", "2",
                  "--batch-size", "3", "--size", "32x24", "--lr", "0.003")
    assert result.exit_code == 0 and out.is_file(), result.output
    line = _error(_run("train", "tryon-stage", "emasc", "--data", str(vitonhd), "-o", str(tmp_path / "e.safetensors"),
                       "--warping", str(out)))
    assert "--warping/--inversion are inputs of the tryon stage, not of emasc" in line
    line = _error(_run("train", "tryon-stage", "warping", "--data", str(tmp_path), "-o", str(out)))
    assert "neither a VITON-HD root" in line


def test_train_tryon_stage_resume_remembers_its_flags(vitonhd: Path, tmp_path: Path) -> None:
    from clipsuite.core.checkpoints import read_config
    from clipsuite.core.train.run_options import stored_options

    out = tmp_path / "warp.safetensors"
    result = _run("train", "tryon-stage", "warping", "--data", str(vitonhd), "-o", str(out), "--steps", "2",
                  "--batch-size", "3", "--size", "32x24", "--lr", "0.003")
    assert result.exit_code == 0, result.output
    # only the raised step count: data, size, batch size and lr come back from the run
    result = _run("train", "tryon-stage", "warping", "-o", str(out), "--steps", "4", "--resume")
    assert result.exit_code == 0 and "stage warping: " in result.output, result.output
    assert "resumed at step 2" in result.output and "trained 4 steps (" in result.output
    assert ", 2 of them now; final loss " in result.output and "(6 vitonhd samples)" in result.output
    assert read_config(out)["size"] == [32, 24] and read_config(out)["step"] == 4
    stored = stored_options(out.with_suffix(".run"))
    assert stored is not None and stored["lr"] == 0.003 and stored["batch_size"] == 3
    line = _error(_run("train", "tryon-stage", "warping", "-o", str(out), "--steps", "5", "--size", "64x48",
                       "--resume"))
    assert "--size 64x48 (the run has 32x24)" in line
    line = _error(_run("train", "tryon-stage", "emasc", "-o", str(out), "--steps", "5", "--resume"))
    assert "STAGE emasc (the run has warping)" in line
    assert read_config(out)["step"] == 4   # the refused resumes wrote nothing


def test_train_tryon_stage_on_a_dress_code_root(tmp_path: Path) -> None:
    from clipsuite.generative import synthetic

    root = synthetic.make_dresscode(tmp_path / "dc", n_train=3, n_test=1, categories=("dresses",))
    out = tmp_path / "warp.safetensors"
    result = _run("train", "tryon-stage", "warping", "--data", str(root), "--category", "dresses", "-o", str(out),
                  "--steps", "1", "--batch-size", "3", "--size", "32x24")
    assert result.exit_code == 0 and "3 dresscode samples" in result.output, result.output
    line = _error(_run("train", "tryon-stage", "warping", "--data", str(root), "-o", str(out)))
    assert "with a upper_body/ folder" in line


def test_tryon_preset_names_fail_in_one_line_offline(vitonhd: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "o" / "r.png"
    line = _error(_run("tryon", *_sample(vitonhd), "-o", str(out), "--emasc", "ladi-vton-vitonhd", *FAST))
    assert "emasc_vitonhd.pth holds a non-linear EMASC" in line and "train tryon-stage emasc" in line
    line = _error(_run("tryon", *_sample(vitonhd), "-o", str(out), "--parts", "sd2-inpainting", *FAST))
    assert "stabilityai/stable-diffusion-2-inpainting are not in the Hugging Face cache" in line
    assert "'sd2-inpainting-random'" in line
    line = _error(_run("tryon", *_sample(vitonhd), "-o", str(out), "--parts", "sd2", *FAST))
    assert "--parts 'sd2': not a preset (sd2-inpainting)" in line
    assert not out.parent.exists()
