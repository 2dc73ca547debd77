"""The clipsuite-medical app: classify (volume, folder), biomedcoop train|compare, vqa train|evaluate|ask,
bad input as one line with a non-zero exit, and the demo step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clipsuite.medical import synthetic
from clipsuite.medical_app.main import app

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def test_classify_volume_dicom_and_folder(tmp_path: Path, slices_split: Path) -> None:
    hu = synthetic.phantom_volume("chest", "tumor", "left", (32, 32, 12), seed=1)
    nifti = synthetic.write_nifti(tmp_path / "chest.nii.gz", hu, orientation="LPS")
    out = tmp_path / "pred.json"
    result = invoke("classify", nifti, "--classes", "lung,brain", "--model", "tiny", "--n-slices", "4",
                    "--mode", "windows", "--aggregate", "max", "--json", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert len(data) == 1 and len(data[0]["slices"]) == 4
    assert abs(sum(data[0]["scores"].values()) - 1.0) < 1e-4
    synthetic.write_dicom_series(tmp_path / "dicom", hu)
    result = invoke("classify", tmp_path / "dicom", "--classes", "lung,brain", "--model", "tiny", "--slices",
                    "2,5", "--window", "lung")
    assert result.exit_code == 0 and "dicom" in result.output
    images = slices_split.parent / "images" / "brain"
    result = invoke("classify", images, "--classes", "lung,brain", "--model", "tiny")
    assert result.exit_code == 0 and "brain_000.png" in result.output


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    nan = synthetic.phantom_volume("head", None, "left", (16, 16, 4))
    nan[1, 1, 1] = np.nan
    path = synthetic.write_nifti(tmp_path / "nan.nii.gz", nan, dtype=np.float32)
    for args in (["classify", path, "--classes", "a,b", "--model", "tiny"],
                 ["classify", tmp_path / "nothing.nii.gz", "--classes", "a,b", "--model", "tiny"],
                 ["classify", path, "--classes", "a,b", "--window", "sunset", "--model", "tiny"],
                 ["vqa", "ask", tmp_path, path, "is there a lesion?"]):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and result.output.strip().count("\n") <= 2, result.output


def test_vqa_train_evaluate_ask(tmp_path: Path, vqa_root: Path) -> None:
    run = tmp_path / "run"
    result = invoke("vqa", "train", vqa_root, "--out", run, "--model", "tiny", "--head", "mevf", "--epochs", "2",
                    "--hidden", "16", "--word-dim", "16", "--no-patch-tokens")
    assert result.exit_code == 0, result.output
    assert (run / "checkpoint.safetensors").is_file() and "overall" in result.output
    out = tmp_path / "acc.json"
    result = invoke("vqa", "evaluate", run, vqa_root, "--json", out)
    assert result.exit_code == 0, result.output
    assert set(json.loads(out.read_text())) >= {"open", "closed", "overall"}
    image = next((vqa_root / "VQA_RAD Image Folder").iterdir())
    result = invoke("vqa", "ask", run, image, "is there a lesion?")
    assert result.exit_code == 0 and "question" in result.output, result.output
    long_question = "is there a lesion in this image of the abdomen on the left or on the right side of it?"
    result = invoke("vqa", "ask", run, image, long_question)
    assert result.exit_code == 2 and "at most 12" in result.output


def test_biomedcoop_train_and_compare(tmp_path: Path, slices_split: Path) -> None:
    descriptions = slices_split.parent / "descriptions.json"
    adapter = tmp_path / "bcoop.safetensors"
    result = invoke("biomedcoop", "train", slices_split, "--descriptions", descriptions, "--out", adapter,
                    "--shots", "2", "--epochs", "2", "--model", "tiny-hf")
    assert result.exit_code == 0, result.output
    assert adapter.is_file() and "test accuracy" in result.output
    table = tmp_path / "runs.csv"
    result = invoke("biomedcoop", "compare", slices_split, "--descriptions", descriptions, "--shots", "1",
                    "--seeds", "1", "--epochs", "1", "--methods", "zeroshot,coop,cocoop,kgcoop,biomedcoop",
                    "--model", "tiny-hf", "--csv", table)
    assert result.exit_code == 0, result.output
    assert "method | 1-shot acc" in result.output and "kgcoop" in result.output
    assert len(table.read_text().splitlines()) == 6
    result = invoke("biomedcoop", "compare", slices_split, "--descriptions", tmp_path / "missing.json",
                    "--model", "tiny-hf")
    assert result.exit_code == 2 and "missing.json" in result.output


def test_demo_step(tmp_path: Path) -> None:
    from clipsuite.medical_app.demo import run_demo_step

    lines: list[str] = []
    result = run_demo_step(tmp_path, lines.append)
    assert result.pictures == {"CT windows": Path("chest_windows.png")} and (tmp_path / "chest_windows.png").is_file()
    assert result.summary[0].startswith("CT phantom (48, 48, 24) spacing") and len(lines) == 3
    from clipsuite.medical.data import load_vqa_rad

    metrics = result.metrics
    test = load_vqa_rad(tmp_path / "vqa_rad", "test")
    closed = sum(s.answer_type == "CLOSED" for s in test)
    # overall is the question-weighted mean of open and closed accuracy
    expected = (metrics["vqa_open"] * (len(test) - closed) + metrics["vqa_closed"] * closed) / len(test)
    assert metrics["vqa_overall"] == pytest.approx(expected)
    assert f"overall {metrics['vqa_overall']:.1f}%" in result.summary[1]


def test_vqa_train_resume_remembers_the_runs_flags(tmp_path: Path, vqa_root: Path) -> None:
    run = tmp_path / "run"
    first = invoke("vqa", "train", vqa_root, "--out", run, "--model", "tiny", "--head", "mevf", "--epochs", "1",
                   "--hidden", "16", "--word-dim", "16", "--no-patch-tokens", "--lr", "0.002")
    assert first.exit_code == 0, first.output
    assert "(1 epoch); final loss " in first.output and "resumed" not in first.output
    # only --epochs (raised) again: the model, head, sizes and lr come back from the run
    again = invoke("vqa", "train", vqa_root, "--out", run, "--resume", "--epochs", "2")
    assert again.exit_code == 0, again.output
    state = json.loads((run / "trainer_state.json").read_text())
    steps = state["batches_per_epoch"]
    assert f"resumed at step {steps}" in again.output and f"trained {2 * steps} steps (2 epochs)" in again.output
    assert state["step"] == 2 * state["batches_per_epoch"] and state["config"]["lr"] == 0.002
    assert json.loads((run / "config.json").read_text())["options"]["hidden"] == 16
    refused = invoke("vqa", "train", vqa_root, "--out", run, "--resume", "--hidden", "32")
    assert refused.exit_code == 2 and "--hidden 32 (the run has 16)" in refused.output, refused.output
    # without --resume an earlier run is not replaced in silence (it was): --overwrite replaces it
    kept = (run / "checkpoint.safetensors").read_bytes()
    again = invoke("vqa", "train", vqa_root, "--out", run, "--model", "tiny", "--head", "mevf", "--epochs", "1",
                   "--hidden", "16", "--word-dim", "16")
    assert again.exit_code == 2 and "already holds a training run" in again.output
    assert (run / "checkpoint.safetensors").read_bytes() == kept
    replaced = invoke("vqa", "train", vqa_root, "--out", run, "--model", "tiny", "--head", "mevf", "--epochs", "1",
                      "--hidden", "16", "--word-dim", "16", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((run / "trainer_state.json").read_text())["step"] == state["batches_per_epoch"]
