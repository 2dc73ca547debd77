"""A stage trained on one CLIP model's features (DeltaSpace mapper, inversion adapter, try-on UNet) is
refused, in one line and with no output written, with another CLIP of the same widths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from clipsuite.core.models import load_model
from clipsuite.generative_app.main import app

runner = CliRunner()


def _run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args], catch_exceptions=False)


@pytest.fixture(scope="module")
def other_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-transformers with other weights: same widths, so only the recorded identity tells them apart."""
    clip = load_model("tiny-transformers", device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in clip.model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return clip.save(tmp_path_factory.mktemp("clip") / "other")


def _refused(result, part: Path) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())  # however the console wrapped the one line
    assert "Traceback" not in text and "error: " in text
    assert f"{part.name}: trained on model 'tiny-transformers'" in text and "run with --clip tiny-transformers" in text


def test_delta_mapper_refuses_another_clip(vitonhd: Path, other_clip: Path, tmp_path: Path) -> None:
    mapper = tmp_path / "delta.safetensors"
    images = vitonhd / "train" / "image"
    assert _run("train", "delta", str(images), "-o", str(mapper), "--steps", "2", "--batch-size", "8",
                "--hidden", "32").exit_code == 0
    edit = ["edit", str(images / "00000_00.jpg"), "a red shirt", "--neutral", "a shirt", "--mapper", str(mapper),
            "--steps", "1", "--size", "32x32"]
    out = tmp_path / "e.png"
    _refused(_run(*edit, "-o", str(out), "--clip", str(other_clip)), mapper)
    assert not out.exists() and not out.with_suffix(".html").exists()
    assert _run(*edit, "-o", str(out)).exit_code == 0  # the CLIP it was trained with: as before


def test_inversion_adapter_and_tryon_unet_refuse_another_clip(vitonhd: Path, other_clip: Path,
                                                              tmp_path: Path) -> None:
    train = ["--data", str(vitonhd), "--steps", "1", "--batch-size", "2", "--size", "32x24"]
    adapter, unet = tmp_path / "inversion.safetensors", tmp_path / "tryon.safetensors"
    assert _run("train", "tryon-stage", "inversion", "-o", str(adapter), *train).exit_code == 0
    # the try-on stage trained on an adapter of another CLIP: refused before training
    _refused(_run("train", "tryon-stage", "tryon", "-o", str(unet), "--inversion", str(adapter), "--clip",
                  str(other_clip), *train), adapter)
    assert not unet.exists()
    assert _run("train", "tryon-stage", "tryon", "-o", str(unet), *train).exit_code == 0
    t = vitonhd / "test"
    sample = ["--person", str(t / "image" / "00006_00.jpg"), "--garment", str(t / "cloth" / "00006_00.jpg"),
              "--parse", str(t / "image-parse-v3" / "00006_00.png"), "--steps", "1", "--size", "32x24"]
    out = tmp_path / "r.png"
    for flag, part in (("--inversion", adapter), ("--unet", unet)):
        _refused(_run("tryon", *sample, flag, str(part), "-o", str(out), "--clip", str(other_clip)), part)
        assert not out.exists()
    assert _run("tryon", *sample, "--inversion", str(adapter), "--unet", str(unet), "-o", str(out)).exit_code == 0
