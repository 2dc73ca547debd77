"""`clipsuite-anomaly train --resume` continues a run with the flags it was started with."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from clipsuite.anomaly_app.main import app
from clipsuite.core.checkpoints import read_config
from clipsuite.core.train import read_metrics

runner = CliRunner()


def _train(*args: str):
    return runner.invoke(app, ["train", *args, "--device", "cpu"], catch_exceptions=False)


def test_resume_takes_back_the_runs_flags_and_refuses_a_conflicting_one(mvtec_root, tmp_path):
    weights = tmp_path / "w.safetensors"
    first = _train(str(mvtec_root), "--method", "anomalyclip", "--out", str(weights), "--model", "tiny",
                   "--epochs", "1", "--batch-size", "4", "--lr", "3e-4", "--seed", "3")
    assert first.exit_code == 0, first.output
    run = tmp_path / "w.run"
    stored = json.loads((run / "config.json").read_text())
    assert stored["options"]["batch_size"] == 4 and stored["options"]["lr"] == 3e-4
    steps_first = [e["step"] for e in read_metrics(run) if "loss" in e]

    # the same folder again without --resume: refused, naming the flags that fix it
    again = _train(str(mvtec_root), "--out", str(weights), "--model", "tiny")
    assert again.exit_code == 2 and "--resume" in again.output and "--overwrite" in again.output

    # a flag that disagrees with the run: one line naming it and the run's value, nothing trained
    clash = _train("--out", str(weights), "--resume", "--lr", "0.01", "--epochs", "2")
    assert clash.exit_code == 2, clash.output
    assert "--lr 0.01 (the run has 0.0003)" in clash.output and "Traceback" not in clash.output
    assert [e["step"] for e in read_metrics(run) if "loss" in e] == steps_first

    # only --resume and a longer run: dataset, method, model, batch size, lr and seed come from the run
    # (with the defaults instead, batch size 8 and lr 1e-3, the Trainer would refuse to resume)
    resumed = _train("--out", str(weights), "--resume", "--epochs", "2")
    assert resumed.exit_code == 0, resumed.output
    steps = [e["step"] for e in read_metrics(run) if "loss" in e]
    assert steps[: len(steps_first)] == steps_first and len(steps) == 2 * len(steps_first)
    config = read_config(weights)
    assert config["method"] == "anomalyclip" and config["lr"] == 3e-4 and config["epochs"] == 2
    assert config["backbone"] == "tiny"


def test_resume_without_a_run_says_so(mvtec_root, tmp_path):
    result = _train("--out", str(tmp_path / "none.safetensors"), "--resume", "--model", "tiny")
    assert result.exit_code == 2 and "no run to resume" in result.output
    assert not (tmp_path / "none.run").exists()
