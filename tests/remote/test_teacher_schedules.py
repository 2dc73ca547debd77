"""DINO's teacher schedules in RS-M-CLIP-style self-distillation: the EMA decay rises on a cosine to 1
over the run, the teacher temperature warms up linearly; a training run applies them step by step and a
resumed run continues them where it stopped."""

from __future__ import annotations

import math

import pytest

from clipsuite.core.errors import InputError
from clipsuite.remote import train as remote_train
from clipsuite.remote.methods import self_distillation
from clipsuite.remote.methods.self_distillation import teacher_momentum, teacher_temperature
from clipsuite.remote.train import RemoteTrainConfig, TrainingData, train_remote

SMALL_HEAD = {"head_hidden": 64, "head_bottleneck": 32, "head_out": 128}


def test_momentum_is_a_cosine_from_its_start_to_one():
    assert teacher_momentum(0, 100, 0.996) == pytest.approx(0.996)
    assert teacher_momentum(50, 100, 0.996) == pytest.approx(0.998)
    assert teacher_momentum(100, 100, 0.996) == pytest.approx(1.0)
    assert teacher_momentum(25, 100, 0.9, 0.99) == pytest.approx(0.99 - 0.09 * (1 + math.cos(math.pi / 4)) / 2)
    values = [teacher_momentum(i, 10, 0.9) for i in range(11)]
    assert values == sorted(values)  # never falls


def test_temperature_warms_up_linearly_then_stays():
    assert [teacher_temperature(i, 4, 0.04, 0.07) for i in (0, 2, 4, 9)] == pytest.approx([0.04, 0.055, 0.07, 0.07])
    assert teacher_temperature(0, 0, 0.04, 0.07) == 0.07  # no warm-up


def test_config_refuses_a_decay_end_below_its_start():
    with pytest.raises(InputError, match="teacher_decay_end"):
        RemoteTrainConfig(teacher_decay=0.99, teacher_decay_end=0.9)


def _recorded_run(monkeypatch, caps, translations, out, **options):
    decays, temperatures = [], []
    update = self_distillation.EmaTeacher.update
    loss = remote_train.dino_loss

    def record_update(teacher, decay=None):
        decays.append(decay)
        return update(teacher, decay)

    def record_loss(student, teacher, center, student_temp, teacher_temp):
        temperatures.append(teacher_temp)
        return loss(student, teacher, center, student_temp, teacher_temp)

    monkeypatch.setattr(self_distillation.EmaTeacher, "update", record_update)
    monkeypatch.setattr(remote_train, "dino_loss", record_loss)
    settings = RemoteTrainConfig(languages=("en",), distill_weight=1.0, local_crops=1, teacher_decay=0.9,
                                 teacher_temp=0.07, teacher_temp_start=0.04, teacher_temp_warmup_steps=2,
                                 **SMALL_HEAD)
    train_remote(TrainingData(caps, split="train", translations=translations), out, settings=settings,
                 batch_size=8, lr=5e-4, schedule="constant", progress=False, **options)
    monkeypatch.undo()
    return decays, temperatures


def test_training_applies_the_schedules_and_a_resumed_run_continues_them(monkeypatch, tmp_path, train_captions):
    caps, translations = train_captions
    decays, temperatures = _recorded_run(monkeypatch, caps, translations, tmp_path / "whole", max_steps=4)
    assert decays == pytest.approx([teacher_momentum(step, 4, 0.9) for step in range(4)])
    assert temperatures == pytest.approx([0.04, 0.055, 0.07, 0.07])

    # stopped after 2 steps of a 4-step run, then resumed: the steps counter is checkpointed
    first, _ = _recorded_run(monkeypatch, caps, translations, tmp_path / "parts", max_steps=2)
    assert first == pytest.approx([teacher_momentum(step, 2, 0.9) for step in range(2)])  # a 2-step run's
    rest, rest_temperatures = _recorded_run(monkeypatch, caps, translations, tmp_path / "parts", max_steps=4,
                                            resume=True)
    assert rest == pytest.approx([teacher_momentum(step, 4, 0.9) for step in (2, 3)])
    assert rest_temperatures == pytest.approx([0.07, 0.07])
