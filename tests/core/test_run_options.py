"""A run remembers how it was started: the Trainer stores the command's options in config.json, resuming
fills the ones not given again and refuses ones given with another value; the Trainer itself refuses to
resume with settings that make another run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clipsuite.core.errors import ClipsuiteError, InputError
from clipsuite.core.train import TrainConfig, Trainer
from clipsuite.core.train.run_options import resume_options, stored_options

torch.set_num_threads(1)


class Task:
    def __init__(self) -> None:
        torch.manual_seed(0)
        self.module = torch.nn.Linear(3, 1)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.mse_loss(self.module(batch["x"]), batch["y"])


def _data() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=g)
    return [{"x": x[i], "y": x[i].sum(0, keepdim=True)} for i in range(8)]


def _fit(out: Path, options: dict | None = None, **overrides: object) -> object:
    cfg = TrainConfig(**{"output_dir": out, "epochs": 1, "batch_size": 4, "lr": 0.1, "progress": False,
                         **overrides})
    return Trainer(Task(), cfg, options).fit(_data())


def test_the_trainer_stores_the_options_and_resume_fills_and_checks_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    started = {"data": Path("/data/pairs.csv"), "lr": 0.1, "epochs": 1, "betas": (0.9, 0.98), "model": "tiny"}
    _fit(out, started)
    stored = json.loads((out / "config.json").read_text())["options"]
    assert stored == {"data": "/data/pairs.csv", "lr": 0.1, "epochs": 1, "betas": [0.9, 0.98], "model": "tiny"}
    assert stored_options(out) == stored

    # defaults on the command line this time: the run's own values come back; a new option keeps its value
    now = {"data": None, "lr": 5e-4, "epochs": 3, "betas": (0.9, 0.999), "model": "tiny", "new_flag": 7}
    assert resume_options(out, now, given={"epochs"}, adjustable={"epochs"}) == {
        "data": "/data/pairs.csv", "lr": 0.1, "epochs": 3, "betas": [0.9, 0.98], "model": "tiny", "new_flag": 7}
    # the same values typed again agree (a path and its string, a tuple and its list)
    agreeing = {"data": Path("/data/pairs.csv"), "lr": 0.1, "betas": (0.9, 0.98)}
    assert resume_options(out, agreeing, given=set(agreeing))["data"] == Path("/data/pairs.csv")
    with pytest.raises(InputError) as refused:
        resume_options(out, {"lr": 0.5, "model": "ViT-B-32", "epochs": 9}, given={"lr", "model", "epochs"})
    message = str(refused.value)
    assert "\n" not in message and str(out) in message
    assert "--lr 0.5 (the run has 0.1); --model ViT-B-32 (the run has tiny); --epochs 9 (the run has 1)" in message
    assert "drop those flags, or start afresh with --overwrite or in another folder" in message


def test_a_folder_without_stored_options_passes_them_through(tmp_path: Path) -> None:
    assert resume_options(tmp_path / "nothing", {"lr": 1.0}, given=set()) == {"lr": 1.0}
    _fit(tmp_path / "plain")  # a library run with no options
    assert "options" not in json.loads((tmp_path / "plain" / "config.json").read_text())
    assert resume_options(tmp_path / "plain", {"lr": 1.0}, given=set()) == {"lr": 1.0}


def test_the_trainer_refuses_to_resume_with_other_settings_naming_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _fit(out, max_steps=1)
    with pytest.raises(ClipsuiteError, match=r"cannot resume with other settings: lr 0.2 \(the run has 0.1\); "
                                             r"seed 5 \(the run has 0\);"):
        _fit(out, lr=0.2, seed=5, max_steps=2, resume=True)
    # the run length, the progress bar and the folder's checkpoints cadence may change: it trains on
    resumed = _fit(out, max_steps=2, checkpoint_every=1, progress=False, resume=True)
    assert resumed.resumed_from == 1 and resumed.step == 2
