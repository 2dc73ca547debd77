"""`clipsuite-anomaly train` on its run config (``clipsuite.anomaly.train_run.TrainRun``): one option per field,
a bad field is one line before torch, the stored options keep the keys older runs have, and ``--resume``
restores every flag (a different value typed again is refused by its flag)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clipsuite.anomaly.train_run import TrainRun
from clipsuite.anomaly_app.main import app
from clipsuite.core.checkpoints import read_config
from clipsuite.core.errors import InputError
from clipsuite.core.run_config import cli_fields

runner = CliRunner()
APP = "clipsuite.anomaly_app.main"
# what `train` stored under "options" before it had a run config: a run started then must still resume
STORED_BEFORE = {"dataset", "method", "out", "format", "epochs", "lr", "batch_size", "max_steps", "checkpoint_every",
                 "model", "pretrained", "seed", "image_size"}


@pytest.mark.parametrize("module", ["clipsuite.anomaly.train_run", "clipsuite.anomaly.detect_checks",
                                    "clipsuite.anomaly.presets"])
def test_the_modules_checked_before_torch_stay_torch_free(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", result.stderr


def test_the_stored_options_keep_the_keys_older_runs_have() -> None:
    assert set(TrainRun(dataset="data").to_options()) == STORED_BEFORE
    assert {f.name for f, _ in cli_fields(TrainRun)} == STORED_BEFORE  # each one an option of the command


def test_the_config_names_every_bad_field_by_its_flag() -> None:
    with pytest.raises(InputError) as error:
        TrainRun(dataset="data", epochs=0, image_size=8, lr=0.0)
    line = error.value.cli_message
    assert "--epochs must be >= 1 (got 0)" in line and "--image-size 8: give 16 px or more" in line
    assert "--lr must be > 0" in line and "\n" not in line
    with pytest.raises(InputError, match="missing DATASET"):
        TrainRun()


@pytest.mark.parametrize(("argv", "expected"), [
    (["--epochs", "0"], "--epochs must be >= 1 (got 0)"),
    (["--batch-size", "0"], "--batch-size must be >= 1 (got 0)"),
    (["--checkpoint-every", "-1"], "--checkpoint-every must be >= 0"),
    (["--image-size", "8"], "--image-size 8: give 16 px or more"),
], ids=["epochs", "batch-size", "checkpoint-every", "image-size"])
def test_train_refuses_a_bad_field_in_one_line_before_torch(mvtec_root: Path, tmp_path: Path, before_torch: Any,
                                                            argv: list[str], expected: str) -> None:
    out = tmp_path / "w.safetensors"
    report, lines = before_torch(APP, ["train", str(mvtec_root), "-o", str(out), "--model", "tiny", *argv])
    assert report == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run folder, no weights


@pytest.mark.parametrize(("argv", "expected"), [
    (["--threshold", "0.5", "--validation", "{good}"], "give either --threshold or --validation, not both"),
    (["--shots", "2"], "--shots 2 needs --reference DIR"),
    (["--on-error", "maybe"], "on_error must be 'skip' or 'fail'"),
], ids=["threshold-and-validation", "shots-without-reference", "on-error"])
def test_detect_refuses_a_bad_combination_before_torch(mvtec_root: Path, tmp_path: Path, before_torch: Any,
                                                       argv: list[str], expected: str) -> None:
    good = mvtec_root / "bottle" / "test" / "good"
    args = [a.format(good=mvtec_root / "bottle" / "test") for a in argv]
    report, lines = before_torch(APP, ["detect", str(good), "-o", str(tmp_path / "r"), "--model", "tiny", *args])
    assert report == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and expected in lines[0], lines
    assert not (tmp_path / "r").exists()


def _train(*args: str) -> Any:
    return runner.invoke(app, ["train", *args, "--device", "cpu"], catch_exceptions=False)


def test_resume_from_the_run_folder_alone_restores_every_flag(mvtec_root: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default --output of a resume by --run-dir would land here
    weights, run = tmp_path / "out" / "w.safetensors", tmp_path / "run"
    first = _train(str(mvtec_root), "-o", str(weights), "--run-dir", str(run), "--model", "tiny", "--max-steps", "1",
                   "--batch-size", "4", "--seed", "5", "--lr", "2e-4", "--format", "mvtec")
    assert first.exit_code == 0, first.output
    options = json.loads((run / "config.json").read_text())["options"]
    assert set(options) == STORED_BEFORE and options["out"] == str(weights.resolve())
    weights.unlink()  # the resume writes them again, where the run says: not at the default --output

    # typed again with other values: one line naming each flag and the run's value, nothing trained
    clash = _train("--run-dir", str(run), "--resume", "--seed", "6", "--method", "adaptclip")
    assert clash.exit_code == 2, clash.output
    line = " ".join(clash.output.split())
    assert "--seed 6 (the run has 5)" in line and "--method adaptclip (the run has anomalyclip)" in line
    assert "drop those flags" in line and not weights.exists()

    # the same values typed again agree; --max-steps may be raised
    resumed = _train("--run-dir", str(run), "--resume", "--max-steps", "2", "--seed", "5", "-m", "tiny")
    assert resumed.exit_code == 0, resumed.output
    assert "resumed at step 1" in resumed.output and weights.is_file()
    assert not (tmp_path / "anomaly_prompts.safetensors").exists()
    config = read_config(weights)
    assert config is not None and config["method"] == "anomalyclip"
    assert config["lr"] == 2e-4 and config["backbone"] == "tiny"


def test_a_run_stored_before_image_size_resumes_at_the_models_size(mvtec_root: Path, tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    first = _train(str(mvtec_root), "-o", str(weights), "--model", "tiny", "--max-steps", "1", "--batch-size", "4")
    assert first.exit_code == 0, first.output
    stored = tmp_path / "w.run" / "config.json"
    data = json.loads(stored.read_text())
    del data["options"]["image_size"]  # as a run of the command before --image-size existed
    stored.write_text(json.dumps(data))
    resumed = _train("-o", str(weights), "--resume", "--max-steps", "2")
    assert resumed.exit_code == 0, resumed.output
    assert "resumed at step 1" in resumed.output
