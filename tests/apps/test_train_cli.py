"""``clipsuite train``: a short run end to end, resume, siglip + locked tower, one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from clipsuite.cli.main import app
from clipsuite.core.checkpoints import read_json
from clipsuite.core.models import load_model
from clipsuite.core.synthetic import write_shapes_dataset
from clipsuite.core.train import read_metrics

torch.set_num_threads(1)  # shared CPUs: one thread each is faster

runner = CliRunner()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), n=8, seed=0, image_size=32)


def _train(*args: str):
    return runner.invoke(app, ["train", *args, "--quiet"])


def _one_line_error(result, needle: str) -> None:
    text = result.output  # stdout and stderr together
    assert result.exit_code != 0, text
    assert "Traceback" not in text and isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], lines


def test_train_then_resume_then_refuse_to_overwrite(shapes, tmp_path):
    out = tmp_path / "run"
    result = _train(str(shapes), "--model", "tiny", "--epochs", "1", "--batch-size", "4", "--lr", "1e-3",
                    "--output", str(out))
    assert result.exit_code == 0, result.output
    assert "trained 2 steps (1 epoch); final loss " in result.output and "resumed" not in result.output
    trained = load_model(str(out))
    assert trained.encode_texts(["a red circle"]).shape == (1, 64)
    entries = read_metrics(out)  # log_every 10 > 2 steps: one line, at the end
    assert [e["step"] for e in entries] == [2] and entries[0]["loss"] > 0
    assert read_json(out / "trainer_state.json")["step"] == 2

    again = _train(str(shapes), "--epochs", "2", "--batch-size", "4", "--output", str(out), "--resume")
    assert again.exit_code == 0, again.output
    assert "resumed at step 2" in again.output and "trained 4 steps (2 epochs), 2 of them now" in again.output
    _one_line_error(_train(str(shapes), "--batch-size", "4", "--output", str(out)), "already holds a training run")


def test_resume_remembers_the_runs_flags_and_refuses_other_ones(shapes, tmp_path):
    out = tmp_path / "run"
    first = _train(str(shapes), "--epochs", "1", "--batch-size", "4", "--lr", "1e-3", "--weight-decay", "0.01",
                   "--seed", "3", "--shared-positives", "--output", str(out))
    assert first.exit_code == 0, first.output
    # the run folder alone, as the README says: every flag comes back from the run, --epochs may grow
    again = _train(str(out), "--resume", "--epochs", "2")
    assert again.exit_code == 0, again.output
    assert "resumed at step 2" in again.output and "trained 4 steps (2 epochs), 2 of them now" in again.output
    config = read_json(out / "trainer_state.json")["config"]
    assert (config["lr"], config["weight_decay"], config["seed"], config["batch_size"]) == (1e-3, 0.01, 3, 4)
    assert read_json(out / "config.json")["task"]["shared_positives"] is True
    options = read_json(out / "config.json")["options"]
    assert options["data"] == str(shapes.resolve()) and options["lr"] == 1e-3 and options["epochs"] == 1
    # --output with no DATA resumes too; a flag that disagrees is refused by its name, before any training
    _one_line_error(_train("--output", str(out), "--resume", "--lr", "0.1", "--loss", "siglip"),
                    "--lr 0.1 (the run has 0.001); --loss siglip (the run has clip)")
    assert read_json(out / "trainer_state.json")["step"] == 4
    same = _train("--output", str(out), "--resume", "--lr", "1e-3", "--epochs", "2")  # agreeing flags are fine
    assert same.exit_code == 0 and "resumed at step 4" in same.output, same.output
    assert "nothing left to train" in same.output and "final loss " in same.output
    _one_line_error(_train("--output", str(tmp_path / "fresh")), "missing DATA")


def test_siglip_with_locked_image_tower_keeps_it_fixed(shapes, tmp_path):
    out = tmp_path / "siglip"
    result = _train(str(shapes), "--loss", "siglip", "--lock-image", "--max-steps", "2", "--batch-size", "4",
                    "--grad-accum", "2", "--precision", "fp32", "--output", str(out))
    assert result.exit_code == 0, result.output
    torch.manual_seed(0)  # the run builds tiny from scratch under seed 0
    start = load_model("tiny")
    trained = load_model(str(out))
    assert float(trained.model.logit_bias.detach()) != 0.0
    after_visual = trained.model.visual.state_dict().values()
    for (name, before), after in zip(start.model.visual.state_dict().items(), after_visual):
        assert torch.equal(before, after), name
    assert not torch.equal(start.model.token_embedding.weight, trained.model.token_embedding.weight)


def _table(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_bad_columns_missing_and_corrupt_images_are_one_line_errors(shapes, tmp_path):
    images = [str(p) for p in sorted((shapes.parent / "images").glob("*.png"))]
    cases = []
    cases.append((_table(tmp_path / "data.csv", ["filepath", "caption"], [[images[0], "a thing"]]),
                  "data.csv line 1: no column 'title' (columns: filepath, caption)"))
    cases.append((_table(tmp_path / "missing.csv", ["filepath", "title"],
                         [[images[0], "a thing"], ["gone.png", "a ghost"]]), "missing.csv line 3: image not found"))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cases.append((_table(tmp_path / "corrupt.csv", ["filepath", "title"],
                         [[images[0], "a thing"], ["bad.png", "a broken thing"]]), "bad.png: corrupt image"))
    for table, needle in cases:
        out = tmp_path / f"out-{table.stem}"
        _one_line_error(_train(str(table), "--output", str(out)), needle)
        assert not out.exists()  # no partial output


def test_bad_options_are_one_line_errors(shapes, tmp_path):
    out = tmp_path / "o"
    _one_line_error(_train(str(shapes), "--loss", "triplet", "--output", str(out)), "unknown loss 'triplet'")
    _one_line_error(_train(str(shapes), "--precision", "fp8", "--output", str(out)), "unknown precision 'fp8'")
    _one_line_error(_train(str(shapes), "--precision", "bf16", "--output", str(out)), "use amp_bf16")
    _one_line_error(_train(str(shapes), "--distributed", "zero3", "--output", str(out)), "unknown distributed mode")
    _one_line_error(_train(str(shapes), "--model", "no-such-model", "--output", str(out)), "unknown model")
    _one_line_error(_train(str(tmp_path / "nothing.csv"), "--output", str(out)), "nothing.csv: file not found")
    # a split of a source without splits would silently train on every row
    _one_line_error(_train(str(shapes), "--split", "train", "--output", str(out)), "has no splits")
    assert not out.exists()
