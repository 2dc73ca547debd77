"""``clipsuite-medical vqa train`` runs on one config (``clipsuite.medical.vqa_run.VQATrainRun``): it stores the
keys the command stored before (so older runs resume), ``--resume`` restores every flag (the data too) and
refuses a different value naming its flag, and a bad flag is one line before torch."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clipsuite.medical.vqa_run import VQATrainRun
from clipsuite.medical_app.main import app

MEDICAL = "clipsuite.medical_app.main"
# what `vqa train` stored under "options" before it had a config: a run started then must resume
STORED_BEFORE = {"data", "head", "epochs", "batch_size", "lr", "finetune_visual", "hidden", "word_dim",
                 "patch_tokens", "model", "pretrained"}
runner = CliRunner()


def invoke(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def test_the_config_stores_the_keys_older_runs_stored(vqa_root: Path) -> None:
    assert set(VQATrainRun(data=str(vqa_root)).to_options()) == STORED_BEFORE


def test_resume_restores_the_flags_and_the_data_and_refuses_another_value(tmp_path: Path, vqa_root: Path) -> None:
    run = tmp_path / "run"
    first = invoke("vqa", "train", vqa_root, "-o", run, "--model", "tiny", "--head", "mevf", "--epochs", "1",
                   "--hidden", "16", "--word-dim", "16", "--batch-size", "16", "--lr", "0.003")
    assert first.exit_code == 0, first.output
    stored = json.loads((run / "config.json").read_text())["options"]
    assert stored["data"] == str(vqa_root.resolve()) and stored["head"] == "mevf" and stored["batch_size"] == 16
    again = invoke("vqa", "train", "-o", run, "--resume", "--epochs", "2")  # no DATA: the run's own
    assert again.exit_code == 0, again.output
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["step"] == 2 * state["batches_per_epoch"] and state["config"]["lr"] == 0.003
    assert state["config"]["batch_size"] == 16 and "mevf on" in again.output
    refused = invoke("vqa", "train", "-o", run, "--resume", "--head", "qcr", "--word-dim", "32")
    assert refused.exit_code == 2, refused.output
    assert "--head qcr (the run has mevf)" in refused.output and "--word-dim 32 (the run has 16)" in refused.output


@pytest.mark.parametrize(("argv", "expected"), [
    (["{tmp}/gone"], "gone: file not found (VQA data)"),
    ([], "missing DATA (VQA-RAD folder/JSON or SLAKE folder)"),
    (["{tmp}", "--head", "san"], "--head 'san': use qcr or mevf"),
    (["{tmp}", "--hidden", "4", "--epochs", "0"], "--hidden must be >= 8 (got 4); --epochs must be >= 1 (got 0)"),
], ids=["data", "no-data", "head", "sizes"])
def test_vqa_train_flags_answer_in_one_line_before_torch(
        tmp_path: Path, before_torch: Callable[..., tuple[dict[str, Any], list[str]]], argv: list[str],
        expected: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    report, lines = before_torch(MEDICAL, ["vqa", "train", *argv, "-o", str(tmp_path / "run"), "--model", "tiny"])
    assert report == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert not (tmp_path / "run").exists()
