"""``TrainConfig.device``: the device a single-process run trains on (the brain MLP's ``--device``)."""

from __future__ import annotations

import pytest
import torch

from clipsuite.core.errors import InputError
from clipsuite.core.train import TrainConfig, Trainer


class _Pairs(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(12, 4, generator=g)
        self.y = self.x.sum(1, keepdim=True)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


class _Task:
    def __init__(self) -> None:
        self.module = torch.nn.Linear(4, 1)
        self.seen: set[str] = set()

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.seen.add(batch["x"].device.type)
        return {"loss": torch.nn.functional.mse_loss(self.module(batch["x"]), batch["y"])}


def test_device_names_checked():
    with pytest.raises(InputError, match="device must be cpu, cuda, cuda:N or mps"):
        TrainConfig(device="gpu0")
    assert TrainConfig(device="cuda:1").device == "cuda:1"


def test_cpu_device_trains_on_the_cpu(tmp_path):
    task = _Task()
    cfg = TrainConfig(output_dir=tmp_path / "run", epochs=2, batch_size=4, progress=False, device="cpu",
                      precision="fp32")
    result = Trainer(task, cfg).fit(_Pairs())
    assert result.step == 6 and task.seen == {"cpu"}
    assert next(task.module.parameters()).device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_cuda_without_a_gpu_is_one_clear_error(tmp_path):
    cfg = TrainConfig(output_dir=tmp_path / "run", progress=False, device="cuda")
    with pytest.raises(InputError, match="device 'cuda': no CUDA GPU is visible"):
        Trainer(_Task(), cfg).fit(_Pairs())
