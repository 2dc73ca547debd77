"""After ``Trainer.fit``: accelerate holds nothing of the run, and no full garbage collection was paid for it
(accelerate's ``free_memory`` runs ``gc.collect()``: seconds per run in a process holding many objects)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch

from clipsuite.core.train import TrainConfig, Trainer
from clipsuite.core.train.task import RunSteps


class Pairs(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = torch.full((3,), float(i))
        return {"x": x, "y": x.sum(0, keepdim=True)}


class LinearTask:
    def __init__(self) -> None:
        self.module = torch.nn.Linear(3, 1)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": torch.nn.functional.mse_loss(self.module(batch["x"]), batch["y"])}


def test_fit_releases_accelerate_without_a_full_garbage_collection(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> int:
        raise AssertionError("Trainer.fit ran gc.collect()")

    trainer = Trainer(LinearTask(), TrainConfig(output_dir=tmp_path / "run", epochs=1, batch_size=8, progress=False))
    monkeypatch.setattr(gc, "collect", refuse)
    result = trainer.fit(Pairs())
    monkeypatch.undo()
    assert result.step == 2
    assert trainer.accelerator is not None and trainer.accelerator.step == 0
    assert not any(getattr(trainer.accelerator, name) for name in ("_models", "_optimizers", "_dataloaders"))


class ScheduledTask(LinearTask):
    """Records what ``start_schedule`` was told."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[int] = []

    def start_schedule(self, steps: RunSteps) -> None:
        self.told.append((steps.total, steps.per_epoch, steps.epochs))


def test_a_scheduled_task_is_told_the_runs_steps_also_when_resumed(tmp_path: Path) -> None:
    config = TrainConfig(output_dir=tmp_path / "run", epochs=2, batch_size=8, progress=False, checkpoint_every=1)
    first = ScheduledTask()
    Trainer(first, TrainConfig(**{**config.__dict__, "max_steps": 2})).fit(Pairs())
    assert first.told == [(2, 2, 1)]
    again = ScheduledTask()
    Trainer(again, TrainConfig(**{**config.__dict__, "resume": True})).fit(Pairs())
    assert again.told == [(4, 2, 2)]  # 2 epochs of 2 steps: the whole run, not what is left of it
    grouped = ScheduledTask()  # 2 batches of 8 per epoch, accumulated in pairs: one optimizer step per epoch
    Trainer(grouped, TrainConfig(**{**config.__dict__, "output_dir": tmp_path / "run2", "epochs": 3,
                                    "grad_accum": 2})).fit(Pairs())
    assert grouped.told == [(3, 1, 3)]
