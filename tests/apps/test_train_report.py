"""cli.train_report: the lines every training command prints from the core TrainResult."""

from __future__ import annotations

import json
from pathlib import Path

from clipsuite.cli.train_report import training_lines
from clipsuite.core.train import TrainResult


def test_a_fresh_run_says_steps_final_loss_with_parts_and_held_out(tmp_path: Path) -> None:
    result = TrainResult(tmp_path, step=12, epoch=3.0, metrics={"loss": 0.25, "l2": 0.2, "cos": 0.05,
                                                                "eval/top1": 61.5, "eval/loss": 0.5})
    assert training_lines(result) == ["trained 12 steps (3 epochs); final loss 0.25 (cos 0.05, l2 0.2)",
                                      "held-out: loss 0.5, top1 61.5"]
    # a command that prints its own table leaves the held-out figures out; others pass their own, with a unit
    assert training_lines(result, held_out={}) == training_lines(result)[:1]
    assert training_lines(result, held_out={"mR": 12.345}, unit=" %")[1] == "held-out: mR 12.35 %"


def test_a_resumed_run_says_where_it_started_and_what_it_trained_now(tmp_path: Path) -> None:
    result = TrainResult(tmp_path, step=16, epoch=4.0, metrics={"loss": 0.125}, resumed_from=8)
    assert training_lines(result) == ["resumed at step 8", "trained 16 steps (4 epochs), 8 of them now; "
                                                           "final loss 0.125"]
    one = TrainResult(tmp_path, step=4, epoch=1.0, metrics={"loss": float("nan")})
    assert training_lines(one) == ["trained 4 steps (1 epoch); final loss nan"]


def test_a_resume_with_nothing_left_reads_the_final_figures_from_the_run_log(tmp_path: Path) -> None:
    lines = [{"step": 7, "epoch": 1.75, "lr": 0.01, "loss": 0.5}, {"step": 8, "epoch": 2.0, "lr": 0.0, "loss": 0.375},
             {"step": 8, "epoch": 2.0, "eval/top1": 70.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = TrainResult(tmp_path, step=8, epoch=2.0, metrics={}, resumed_from=8)
    assert training_lines(result, longer="--steps") == [
        "resumed at step 8", "nothing left to train: the run had done its 8 steps (raise --steps to train longer)",
        "trained 8 steps (2 epochs); final loss 0.375", "held-out: top1 70"]
    # no log at all (a run folder from elsewhere): the steps alone
    bare = TrainResult(tmp_path / "none", step=3, epoch=1.0, resumed_from=3)
    assert training_lines(bare)[-1] == "trained 3 steps (1 epoch)"
