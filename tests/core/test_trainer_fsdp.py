"""What of the Trainer's FSDP path runs on a CPU: the plugin it asks accelerate for, and its checkpoint
code on FSDP2 shards (two gloo processes sharding with torch's ``fully_shard`` as accelerate would).

accelerate itself shards only across GPU processes, so a whole FSDP fit is not run here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from clipsuite.core.train import TrainConfig
from clipsuite.core.train.launch import fsdp_block_classes, fsdp_plugin
from clipsuite.core.train.shards import vectorize_scalars
from clipsuite.core.train.task import TaskStep

torch.set_num_threads(1)


class TwoTowers(torch.nn.Module):
    """Blocks in a ModuleList (FSDP units), a Sequential of torch's own layers (not units), a scalar."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList([Block() for _ in range(3)])
        self.head = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
        self.scale = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x) * self.scale.exp()


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.tanh(self.fc(x))


class Task:
    def __init__(self) -> None:
        self.module = TwoTowers()

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        return self.module(batch).square().mean()


def test_fsdp_units_are_the_repeated_blocks(monkeypatch):
    from clipsuite.core.models import load_model

    monkeypatch.delenv("FSDP_CPU_RAM_EFFICIENT_LOADING", raising=False)  # the plugin sets it process-wide
    assert fsdp_block_classes(TwoTowers()) == ["Block"]
    tiny = load_model("tiny", device="cpu")
    assert fsdp_block_classes(tiny.model) == ["ResidualAttentionBlock"]  # open_clip's, in both towers
    step = TaskStep(Task())
    plugin = fsdp_plugin(TrainConfig(distributed="fsdp"), step)
    assert (plugin.fsdp_version, plugin.transformer_cls_names_to_wrap, plugin.cpu_ram_efficient_loading) == (
        2, ["Block"], True)
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

    plugin.set_auto_wrap_policy(step)
    policy = fsdp2_prepare_auto_wrap_policy(plugin, step)
    assert [name for name, m in step.named_modules() if policy(m)] == [f"trained.blocks.{i}" for i in range(3)]
    chosen = fsdp_plugin(TrainConfig(distributed="fsdp", fsdp_wrap=("Linear",)), step)
    assert chosen.transformer_cls_names_to_wrap == ["Linear"]


def test_scalar_parameters_become_one_element_vectors_for_fsdp2():
    torch.manual_seed(0)
    module = TwoTowers()
    x = torch.randn(2, 4)
    before = module(x)
    assert vectorize_scalars(module) == frozenset({"scale"})
    assert module.scale.shape == (1,) and module.scale.requires_grad
    torch.testing.assert_close(module(x), before, rtol=0, atol=0)  # broadcasting: the same arithmetic


SHARDED = textwrap.dedent('''
    import copy, os, sys
    from pathlib import Path
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor
    from clipsuite.core.checkpoints import load_tensors, save_tensors
    from clipsuite.core.train.ema import EMA
    from clipsuite.core.train.shards import full_tensor, vectorize_scalars
    from clipsuite.core.train.state import gather_state, restore_state

    sys.path.insert(0, sys.argv[3])
    from test_trainer_fsdp import TwoTowers

    torch.set_num_threads(1)

    def sharded(mesh):
        torch.manual_seed(0)
        module = TwoTowers()
        scalars = vectorize_scalars(module)
        for block in module.blocks:  # what accelerate's FSDP2 plugin does with our policy
            fully_shard(block, mesh=mesh)
        fully_shard(module, mesh=mesh)
        return module, scalars

    def train(module, optimizer, ema, seed):
        x = torch.randn(8, 4, generator=torch.Generator().manual_seed(seed))  # the same batch everywhere
        module(x).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        ema.update()

    def worker(rank, out, port):
        os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        dist.init_process_group("gloo")
        mesh = init_device_mesh("cpu", (2,))
        out = Path(out)
        module, scalars = sharded(mesh)
        torch.manual_seed(0)
        plain = TwoTowers()  # the same model, unsharded, trained on the same batches
        optimizer = torch.optim.AdamW(module.parameters(), lr=0.1)
        reference = torch.optim.AdamW(plain.parameters(), lr=0.1)
        ema = EMA(dict(module.named_parameters()), 0.5)
        plain_ema = EMA(dict(plain.named_parameters()), 0.5)
        for seed in (1, 2):
            train(module, optimizer, ema, seed)
            train(plain, reference, plain_ema, seed)
        assert isinstance(module.blocks[0].fc.weight, DTensor)
        tensors, plain_state = gather_state(module, optimizer, ema.state_tensors(), keep=rank == 0, scalars=scalars)
        want, want_plain = gather_state(plain, reference, plain_ema.state_tensors(), keep=True)
        if rank == 0:  # whole tensors, in the model's own shapes, equal to the unsharded run's
            assert tensors.keys() == want.keys() and plain_state == want_plain, (tensors.keys(), want.keys())
            for key in want:
                torch.testing.assert_close(tensors[key], want[key], rtol=1e-6, atol=1e-7, msg=key)
            assert tensors["w.scale"].shape == () and tensors["ema.scale"].shape == ()
            save_tensors(out / "state.safetensors", tensors)
        else:
            assert tensors == {} and plain_state == {}
        dist.barrier()
        # resume: a fresh sharded model takes the whole tensors back, and trains on like the first
        resumed, _ = sharded(mesh)
        with torch.no_grad():
            for param in resumed.parameters():
                param.zero_()
        optimizer2 = torch.optim.AdamW(resumed.parameters(), lr=0.1)
        ema2 = EMA(dict(resumed.named_parameters()), 0.5)
        saved = load_tensors(out / "state.safetensors")
        restore_state(resumed, optimizer2, saved, want_plain, out / "state.safetensors", scalars)
        ema2.load_state_tensors({k[4:]: v for k, v in saved.items() if k.startswith("ema.")})
        train(module, optimizer, ema, 3)
        train(resumed, optimizer2, ema2, 3)
        for (name, a), b in zip(module.named_parameters(), resumed.parameters()):
            assert torch.equal(full_tensor(a), full_tensor(b)), name
        for name in ema.shadow:
            assert torch.equal(full_tensor(ema.shadow[name]), full_tensor(ema2.shadow[name])), name
        dist.barrier()
        os.write(1, f"OK {rank}\\n".encode())
        dist.destroy_process_group()

    if __name__ == "__main__":
        import torch._dynamo  # noqa: F401  (imported once, before forking)
        import torch.multiprocessing as mp
        mp.start_processes(worker, args=(sys.argv[1], sys.argv[2]), nprocs=2, start_method="fork")
''')


def test_checkpoints_gather_fsdp2_shards_and_split_them_again(tmp_path):
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    done = subprocess.run([sys.executable, str(script), str(tmp_path), port, str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(done.stdout.split()) == ["0", "1", "OK", "OK"]


@pytest.mark.parametrize("ema", [None, 0.5])
def test_contrastive_rebuild_from_the_run_weights_equals_the_trained_model(tmp_path, ema):
    """Under FSDP train_contrastive saves a model rebuilt from the run's whole weights; here (no
    FSDP on a CPU) the rebuild is compared with the model trained in place."""
    from clipsuite.core.contrastive import ContrastiveConfig, _rebuilt, train_contrastive
    from clipsuite.core.synthetic import write_shapes_dataset

    data = write_shapes_dataset(tmp_path / "data", 16, seed=0)
    settings = ContrastiveConfig(loss="siglip", lock_image=True)
    result = train_contrastive(data, tmp_path / "out", "tiny", contrastive=settings, max_steps=2, batch_size=8,
                               ema_decay=ema, progress=False, verify=False)
    cfg = TrainConfig(output_dir=tmp_path / "out", ema_decay=ema)
    rebuilt = _rebuilt("tiny", None, settings, cfg, result.train).model.state_dict()
    trained = result.model.model.state_dict()
    assert rebuilt.keys() == trained.keys() and "logit_bias" in trained
    for key in trained:
        assert torch.equal(rebuilt[key].cpu(), trained[key].cpu()), key
