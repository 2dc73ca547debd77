"""Methods at another input size than the backbone's own (AnomalyCLIP and AdaptCLIP run ViT-L/14-336
at 518 px in their papers): every method, and the CLI's --image-size through train, resume and detect."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from clipsuite.anomaly.data import load_dataset
from clipsuite.anomaly.methods.base import method_names
from clipsuite.anomaly.methods.learned import build_learned
from clipsuite.anomaly.pipeline import Detector, build_method
from clipsuite.anomaly_app.main import app
from clipsuite.core.models import load_model

runner = CliRunner()
TINY = ["--model", "tiny", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_at_96():
    torch.set_num_threads(1)
    return load_model("tiny", device="cpu", image_size=96)


@pytest.mark.parametrize("name", method_names())
def test_every_method_runs_on_the_resampled_grid(name, tiny_at_96, mvtec_root):
    """12 x 12 patches instead of 8 x 8: maps at the model's input size, one score per image."""
    category = load_dataset(mvtec_root, categories=["bottle"])[0]
    learned = name in method_names(trained=True)
    method = build_learned(tiny_at_96, name).eval() if learned else build_method(tiny_at_96, name)
    scored = Detector(tiny_at_96, method).score_category(category, shots=0 if name != "patch_memory" else 1)
    assert scored.result.maps.shape == (len(category.test), 96, 96)
    assert torch.isfinite(scored.result.scores).all() and torch.isfinite(scored.result.maps).all()


def test_cli_trains_at_a_size_resumes_at_it_and_refuses_another(mvtec_root, tmp_path):
    weights = tmp_path / "ac.safetensors"
    first = runner.invoke(app, ["train", str(mvtec_root), "--method", "anomalyclip", "--out", str(weights),
                                "--image-size", "96", "--max-steps", "1", "--batch-size", "4", *TINY])
    assert first.exit_code == 0, first.output
    assert "trained 1 steps (" in first.output and "; final loss " in first.output  # what it did (train_report)
    stored = json.loads((tmp_path / "ac.run" / "config.json").read_text())
    assert stored["options"]["image_size"] == 96
    resumed = runner.invoke(app, ["train", "--out", str(weights), "--resume", "--max-steps", "2", *TINY])
    assert resumed.exit_code == 0, resumed.output  # at 96 again: the run's flag, not the model's 64
    assert "resumed at step 1" in resumed.output and "trained 2 steps (" in resumed.output

    image = mvtec_root / "bottle" / "test" / "good" / "000.png"
    refused = runner.invoke(app, ["detect", str(image), "--method", "anomalyclip", "--weights", str(weights),
                                  "--out", str(tmp_path / "wrong"), *TINY])
    assert refused.exit_code == 2, refused.output
    # notes (this run is on random weights) may come first; the refusal itself is one line
    lines = [line for line in refused.output.splitlines() if line.strip() and not line.startswith("note:")]
    assert len(lines) == 1 and "at 96 px, not at 64 px" in lines[0] and lines[0].endswith("--image-size 96")
    assert not (tmp_path / "wrong").exists()

    right = runner.invoke(app, ["detect", str(image), "--method", "anomalyclip", "--weights", str(weights),
                                "--image-size", "96", "--out", str(tmp_path / "report"), *TINY])
    assert right.exit_code == 0, right.output
    assert (tmp_path / "report" / "scores.csv").is_file()


def test_cli_refuses_a_tiny_image_size_before_loading(tmp_path):
    result = runner.invoke(app, ["detect", str(tmp_path), "--image-size", "4", *TINY])
    assert result.exit_code == 2 and "--image-size" in result.output
