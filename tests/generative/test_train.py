from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipsuite.core.errors import ModelError
from clipsuite.core.train import TrainConfig
from clipsuite.generative.components import build_parts
from clipsuite.generative.data import VitonHD
from clipsuite.generative.methods.emasc import EMASC
from clipsuite.generative.methods.tryon_unet import TryOnUNet
from clipsuite.generative.methods.warping import GarmentWarper
from clipsuite.generative.part_files import load_part
from clipsuite.generative.train import EMASCTask, TryOnTask, WarpingTask, train_stage

SIZE = (32, 24)


@pytest.fixture(scope="module")
def data(vitonhd: Path) -> VitonHD:
    return VitonHD(vitonhd, "train", size=SIZE)


def _loss_on(task, data: VitonHD) -> float:  # type: ignore[no-untyped-def]
    batch = torch.utils.data.default_collate([data[i] for i in range(len(data))])
    torch.manual_seed(123)  # same noise, timesteps and dropout before and after
    with torch.no_grad():
        out = task.loss(batch)
    return float(out["loss"] if isinstance(out, dict) else out)


def _cfg(tmp_path: Path, steps: int, **kw) -> TrainConfig:  # type: ignore[no-untyped-def]
    return TrainConfig(output_dir=tmp_path, max_steps=steps, batch_size=6, lr=1e-3, progress=False,
                       precision="fp32", schedule="constant", **kw)


def test_warping_stage_learns_saves_and_resumes(data: VitonHD, tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = WarpingTask(GarmentWarper(SIZE))
    before = _loss_on(task, data)
    result = train_stage(task, data, _cfg(tmp_path / "run", 4, checkpoint_every=2), tmp_path / "warping.safetensors")
    assert result.step == 4
    resumed = train_stage(task, data, _cfg(tmp_path / "run", 12, checkpoint_every=2, resume=True, ema_decay=None),
                          tmp_path / "warping.safetensors")
    assert resumed.resumed_from == 4 and resumed.step == 12
    after = _loss_on(task, data)
    assert after < 0.9 * before, (before, after)
    again = load_part(GarmentWarper(SIZE), tmp_path / "warping.safetensors", "warping")
    for name, value in task.module.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], value, rtol=0, atol=0)
    with pytest.raises(ModelError, match="holds stage 'warping', expected 'emasc'"):
        load_part(EMASC(build_parts("micro").vae.config), tmp_path / "warping.safetensors", "emasc")


def test_emasc_stage_loss_falls(data: VitonHD, tmp_path: Path) -> None:
    parts = build_parts("micro", seed=0)
    task = EMASCTask(parts.vae, EMASC(parts.vae.config))
    before = _loss_on(task, data)
    train_stage(task, data, _cfg(tmp_path, 10, ema_decay=0.5), tmp_path / "emasc.safetensors")
    assert _loss_on(task, data) < 0.9 * before
    assert all(not p.requires_grad for p in parts.vae.parameters())
    load_part(EMASC(parts.vae.config), tmp_path / "emasc.safetensors", "emasc")


def test_tryon_stage_loss_falls_with_condition_dropout(data: VitonHD, tmp_path: Path) -> None:
    parts = build_parts("micro", seed=0)
    states = torch.randn(1, 5, 32)
    unet = TryOnUNet(parts.unet)
    task = TryOnTask(unet, parts.vae, parts.scheduler, lambda b: states.expand(len(b["image"]), -1, -1).to(
        b["image"].device), torch.zeros(1, 5, 32), warper=GarmentWarper(SIZE))
    before = _loss_on(task, data)
    train_stage(task, data, _cfg(tmp_path, 6), tmp_path / "tryon.safetensors")
    after = _loss_on(task, data)
    assert after < 0.9 * before, (before, after)
    assert unet.unet.conv_in.weight[:, 9:].abs().sum() > 0  # the new channels learned something
