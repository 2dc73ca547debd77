"""The core Trainer: SIGKILL + resume equals an uninterrupted run, grad accumulation, EMA, schedule."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from clipsuite.core.checkpoints import load_tensors
from clipsuite.core.errors import ClipsuiteError, InputError
from clipsuite.core.train import EMA, TrainConfig, Trainer, load_trainable, lr_factor, read_metrics
from clipsuite.core.train.config import SCHEDULES
from clipsuite.core.train.order import EpochOrder

torch.set_num_threads(1)  # shared CPUs: one thread each is faster
WALL_CLOCK = {"time", "seconds", "elapsed", "samples_per_second", "steps_per_second"}

# A self-contained training script: dropout (model RNG), random augmentation (data RNG), BatchNorm
# running statistics, Adam state, EMA, grad accumulation and mid-epoch checkpoints all have to survive
# the kill for equality; log lines every 4 steps average over a checkpoint (step 6), so the running sums
# behind metrics.jsonl must survive it too.
SCRIPT = textwrap.dedent('''
    import os, sys, time
    from pathlib import Path
    import torch
    from clipsuite.core.train import Trainer, TrainConfig

    torch.set_num_threads(1)

    class Noisy(torch.utils.data.Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(1)
            self.x = torch.randn(30, 6, generator=g)
            self.y = self.x @ torch.arange(6.0).unsqueeze(1)
        def __len__(self):
            return 30
        def __getitem__(self, i):
            return {"x": self.x[i] + 0.05 * torch.randn(6), "y": self.y[i]}

    class Task:
        def __init__(self):
            torch.manual_seed(0)
            self.module = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                              torch.nn.Dropout(0.2), torch.nn.Linear(16, 1))
            self.calls = 0
        def loss(self, batch):
            self.calls += 1
            hang = os.environ.get("HANG_AT_CALL")
            if hang and self.calls == int(hang):
                Path(os.environ["MARKER"]).write_text("waiting")
                time.sleep(600)  # the parent SIGKILLs us here
            return torch.nn.functional.mse_loss(self.module(batch["x"]), batch["y"])
        def config(self):
            return {"kind": "regression"}

    def run(out, resume):
        cfg = TrainConfig(output_dir=Path(out), epochs=3, batch_size=4, lr=1e-2, grad_accum=2, checkpoint_every=3,
                          ema_decay=0.8, warmup_steps=2, log_every=4, resume=resume, progress=False)
        return Trainer(Task(), cfg).fit(Noisy())

    if __name__ == "__main__":
        run(sys.argv[1], sys.argv[2] == "resume")
''')


def _script_namespace(source: str) -> dict:
    """Run a test script's definitions in this process (saves a slow torch import per process)."""
    namespace: dict = {"__name__": "train_script"}
    exec(compile(source, "train_script", "exec"), namespace)  # noqa: S102  (our own test script)
    return namespace


def _run(script: Path, out: Path, mode: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, str(script), str(out), mode], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_training_then_resume_matches_uninterrupted_run(tmp_path):
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    marker = tmp_path / "marker"

    # 30 samples / batch 4 = 8 micro-batches per epoch, accum 2 -> 4 steps per epoch, 12 in all;
    # checkpoints every 3 steps; the 15th loss call is inside step 8 of epoch 2, after the step-6
    # checkpoint (which lies mid-epoch).
    victim = _run(script, killed, "fresh", {"HANG_AT_CALL": "15", "MARKER": str(marker)})
    namespace = _script_namespace(SCRIPT)
    assert namespace["run"](reference, False).step == 12  # the uninterrupted run, here, meanwhile
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert victim.poll() is None, victim.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the run never reached the kill point"
        time.sleep(0.2)
    state = json.loads((killed / "trainer_state.json").read_text())
    assert state["step"] == 6 and 0 < state["batch"] < 8  # a mid-epoch checkpoint is in force
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL

    resumed = namespace["run"](killed, True)
    assert resumed.resumed_from == 6 and resumed.step == 12

    for name in ("checkpoint.safetensors", "ema.safetensors", "state/step-00000012.safetensors"):
        want, got = load_tensors(reference / name), load_tensors(killed / name)
        assert want.keys() == got.keys()
        for key in want:
            assert torch.equal(want[key], got[key]), f"{name}:{key} differs after resume"
    assert "b.1.running_mean" in want  # BatchNorm statistics are part of the state
    # the log of the resumed run holds no duplicate steps and is the uninterrupted run's, line for line
    # (the step-8 line averages steps 5-8, across the kill); wall-clock fields, if any, aside
    def timeless(entries: list[dict]) -> list[dict]:
        return [{k: v for k, v in e.items() if k not in WALL_CLOCK} for e in entries]
    got_log = read_metrics(killed)
    assert [e["step"] for e in got_log if "loss" in e] == [4, 8, 12]
    assert timeless(got_log) == timeless(read_metrics(reference))
    assert sorted(p.name for p in (killed / "state").iterdir()) == [
        "step-00000012.rank0.rng.safetensors", "step-00000012.safetensors"]


# ---- in-process tests ----------------------------------------------------------------------------
class Regression(torch.utils.data.Dataset):
    def __init__(self, n: int = 20) -> None:
        g = torch.Generator().manual_seed(3)
        self.x = torch.randn(n, 5, generator=g)
        self.y = self.x @ torch.linspace(-1, 1, 5).unsqueeze(1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


class LinearTask:
    def __init__(self) -> None:
        torch.manual_seed(0)
        self.module = torch.nn.Linear(5, 1)
        self.evaluations = 0

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mse = torch.nn.functional.mse_loss(self.module(batch["x"]), batch["y"])
        return {"loss": mse, "mse": mse.detach()}

    def evaluate(self) -> dict[str, float]:
        self.evaluations += 1
        return {"weight_norm": float(self.module.weight.norm())}


def _fit(tmp_path: Path, name: str, **overrides) -> tuple[LinearTask, object]:
    task = LinearTask()
    cfg = TrainConfig(**{"output_dir": tmp_path / name, "epochs": 2, "batch_size": 8, "lr": 0.05,
                         "optimizer": "sgd", "momentum": 0.0, "schedule": "constant", "progress": False,
                         "log_every": 1, **overrides})
    return task, Trainer(task, cfg).fit(Regression())


def test_grad_accumulation_equals_one_big_batch(tmp_path):
    # 20 samples: batches 8, 8, 4 versus micro-batches 4+4, 4+4, 4 (the last group is one micro-batch)
    big, _ = _fit(tmp_path, "big", batch_size=8, grad_accum=1)
    small, result = _fit(tmp_path, "small", batch_size=4, grad_accum=2)
    assert result.step == 6
    torch.testing.assert_close(small.module.weight, big.module.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(small.module.bias, big.module.bias, rtol=1e-5, atol=1e-6)


def test_metrics_eval_and_checkpoint_files(tmp_path):
    task, result = _fit(tmp_path, "run", epochs=3, batch_size=5)
    out = tmp_path / "run"
    entries = read_metrics(out)
    train = [e for e in entries if "loss" in e]
    evals = [e for e in entries if "eval/weight_norm" in e]
    assert [e["step"] for e in train] == list(range(1, 13)) and len(evals) == 3 == task.evaluations
    assert train[-1]["loss"] < train[0]["loss"]  # it learns
    assert all(e["mse"] == pytest.approx(e["loss"]) for e in train)
    fresh = torch.nn.Linear(5, 1)
    assert load_trainable(fresh, result.checkpoint) == ["bias", "weight"]
    torch.testing.assert_close(fresh.weight, task.module.weight)
    assert json.loads((out / "config.json").read_text())["train"]["batch_size"] == 5


def test_cosine_schedule_with_warmup():
    assert [lr_factor(s, 10, 2) for s in (0, 1)] == [0.5, 1.0]
    assert lr_factor(2, 10, 2) == pytest.approx(1.0)
    assert lr_factor(6, 10, 2) == pytest.approx(0.5)
    assert lr_factor(10, 10, 2) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(5, 10, 0, "constant") == 1.0


def test_logged_lr_follows_the_schedule(tmp_path):
    _fit(tmp_path, "sched", schedule="cosine", warmup_steps=2, epochs=2, batch_size=5)
    logged = [e["lr"] for e in read_metrics(tmp_path / "sched") if "lr" in e]
    assert logged == pytest.approx([0.05 * lr_factor(s, 8, 2) for s in range(8)])


@pytest.mark.parametrize("warmup", [0, 3])
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("longer", [{"epochs": 4}, {"max_steps": 13}])
def test_a_resumed_run_that_trains_longer_follows_its_new_schedule_from_its_first_step(tmp_path, schedule, warmup,
                                                                                        longer):
    # 2 epochs of 4 steps, resumed to 16 steps (epochs) or 13 (max_steps): the restored optimizer holds the old
    # schedule's next lr (0 after a cosine's end); the first resumed step must already use the new schedule's
    _fit(tmp_path, "s", schedule=schedule, warmup_steps=warmup, epochs=2, batch_size=5)
    _, result = _fit(tmp_path, "s", schedule=schedule, warmup_steps=warmup, batch_size=5, resume=True, **longer)
    total = longer.get("max_steps") or 4 * longer["epochs"]
    assert result.resumed_from == 8 and result.step == total
    resumed = [e for e in read_metrics(tmp_path / "s") if "lr" in e and e["step"] > 8]
    assert [e["step"] for e in resumed] == list(range(9, total + 1))
    # metrics.jsonl's step s logs the lr of optimizer step s - 1 (0-based), as a fresh run does
    want = [0.05 * lr_factor(s, total, warmup, schedule) for s in range(8, total)]
    assert resumed[0]["lr"] == pytest.approx(want[0]) and want[0] > 0
    assert [e["lr"] for e in resumed] == pytest.approx(want)


def test_ema_update_rule_and_final_weights(tmp_path):
    param = torch.nn.Parameter(torch.zeros(3))
    ema = EMA({"p": param}, decay=0.5)
    with torch.no_grad():
        param.fill_(4.0)
    ema.update()
    with torch.no_grad():
        param.fill_(8.0)
    ema.update()
    torch.testing.assert_close(ema.shadow["p"], torch.full((3,), 5.0))  # 0.5 * (0.5*0 + 0.5*4) + 0.5*8
    task, result = _fit(tmp_path, "ema", ema_decay=0.9)
    averaged = load_tensors(tmp_path / "ema" / "ema.safetensors")
    live = load_tensors(result.checkpoint)
    torch.testing.assert_close(task.module.weight.detach(), averaged["weight"])  # the module ends with EMA
    assert not torch.equal(live["weight"], averaged["weight"])


def test_resume_without_state_starts_fresh_and_resume_of_finished_run_is_a_no_op(tmp_path):
    _, first = _fit(tmp_path, "r", resume=True)
    assert first.resumed_from is None and first.step == 6
    task, again = _fit(tmp_path, "r", resume=True)
    assert again.resumed_from == 6 and again.step == 6
    torch.testing.assert_close(task.module.weight, load_tensors(first.checkpoint)["weight"])


def test_resume_with_other_batch_size_is_one_clear_error(tmp_path):
    _fit(tmp_path, "r", max_steps=2)
    with pytest.raises(ClipsuiteError, match="cannot resume"):
        _fit(tmp_path, "r", batch_size=4, resume=True)


def test_max_steps_stops_mid_epoch(tmp_path):
    task, result = _fit(tmp_path, "m", max_steps=4, epochs=10)
    assert result.step == 4 and result.epoch == pytest.approx(1 + 1 / 3)
    assert task.evaluations == 2  # end of epoch 1 and at the stop


def test_bad_config_and_bad_tasks_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="unknown optimizer 'lion'"):
        TrainConfig(output_dir=tmp_path, optimizer="lion")
    with pytest.raises(InputError, match="batch_size must be >= 1"):
        TrainConfig(output_dir=tmp_path, batch_size=0)
    task = LinearTask()
    task.module.requires_grad_(False)
    with pytest.raises(ClipsuiteError, match="nothing to train"):
        Trainer(task, TrainConfig(output_dir=tmp_path / "x", progress=False)).fit(Regression())
    with pytest.raises(InputError, match="empty"):
        Trainer(LinearTask(), TrainConfig(output_dir=tmp_path / "y", progress=False)).fit(Regression(0))
    with pytest.raises(InputError, match="unknown precision 'fp8'"):
        TrainConfig(output_dir=tmp_path, precision="fp8")
    with pytest.raises(InputError, match="checkpoint_every must be >= 0"):
        TrainConfig(output_dir=tmp_path, checkpoint_every=-1)
    with pytest.raises(InputError, match="unknown distributed mode 'zero3'"):
        TrainConfig(output_dir=tmp_path, distributed="zero3")
    assert TrainConfig(output_dir=tmp_path, precision="amp").precision == "amp_fp16"  # open_clip's name


@pytest.mark.parametrize("cast", ["bf16", "fp16"])
def test_cast_weights_are_refused_for_training_naming_the_amp_precision(tmp_path, cast):
    with pytest.raises(InputError, match=f"precision '{cast}' casts the weights.*use amp_{cast}"):
        TrainConfig(output_dir=tmp_path, precision=cast)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_amp_fp16_on_the_cpu_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="amp_fp16 needs a CUDA GPU"):
        Trainer(LinearTask(), TrainConfig(output_dir=tmp_path / "z", precision="amp_fp16")).fit(Regression())


class DtypeTask(LinearTask):
    """Records the dtype the linear layer computes in."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: set[torch.dtype] = set()

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.module(batch["x"])
        self.dtypes.add(out.dtype)
        return {"loss": torch.nn.functional.mse_loss(out.float(), batch["y"])}


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU auto means amp")
def test_precision_policy_on_the_cpu(tmp_path):
    """amp_bf16 computes in bf16 with float32 weights; auto and fp32 compute in float32 on the CPU."""
    for name, want in (("amp_bf16", torch.bfloat16), ("auto", torch.float32), ("fp32", torch.float32)):
        task = DtypeTask()
        cfg = TrainConfig(output_dir=tmp_path / name, epochs=1, batch_size=8, lr=0.05, precision=name, progress=False)
        result = Trainer(task, cfg).fit(Regression())
        assert task.dtypes == {want}, name
        assert task.module.weight.dtype == torch.float32 and math.isfinite(result.metrics["loss"])


def test_epoch_order_is_a_sharded_permutation():
    orders = [EpochOrder(10, 3, seed=1, rank=r, world_size=2) for r in (0, 1)]
    shards = [[i for batch in o.batches(0) for i in batch] for o in orders]
    assert len(shards[0]) == len(shards[1]) == 5 and sorted(shards[0] + shards[1]) == list(range(10))
    assert orders[0].batches(0) != orders[0].batches(1)  # reshuffled each epoch
    assert orders[0].batches(2) == EpochOrder(10, 3, seed=1, rank=0, world_size=2).batches(2)
    assert len(orders[0]) == 2


DDP_SCRIPT = textwrap.dedent('''
    import os, sys
    from pathlib import Path
    import torch
    from clipsuite.core.train import Trainer, TrainConfig

    torch.set_num_threads(1)

    class Reg(torch.utils.data.Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(3)
            self.x = torch.randn(16, 5, generator=g)
            self.y = self.x @ torch.linspace(-1, 1, 5).unsqueeze(1)
        def __len__(self):
            return 16
        def __getitem__(self, i):
            return {"x": self.x[i], "y": self.y[i]}

    def inside_ddp_forward():
        frame = sys._getframe()
        while frame is not None:
            if frame.f_code.co_name == "forward" and frame.f_code.co_filename.endswith("parallel/distributed.py"):
                return True
            frame = frame.f_back
        return False

    class Task:
        def __init__(self):
            torch.manual_seed(1 + int(os.environ.get("RANK", "0")))  # ranks differ: rank 0's must win
            self.module = torch.nn.Linear(5, 1)
            self.in_ddp = set()
        def loss(self, batch):
            self.in_ddp.add(inside_ddp_forward())
            return torch.nn.functional.mse_loss(self.module(batch["x"]), batch["y"])

    def run(out, batch_size, resume=False, task=None):
        cfg = TrainConfig(output_dir=Path(out), epochs=2, batch_size=batch_size, lr=0.05, optimizer="adam",
                          schedule="constant", progress=False, resume=resume)
        return Trainer(task or Task(), cfg).fit(Reg())

    def worker(rank, out, port):  # as torchrun would set it up; forked, so torch is imported once
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        task = Task()
        step = run(out, 4, task=task).step
        again = run(out, 4, resume=True)  # restores every process's state; nothing left to train
        # one write: the two ranks share the pipe and must not interleave
        os.write(1, f"DONE {step} in_ddp={sorted(task.in_ddp)} resumed={again.resumed_from}\\n".encode())

    if __name__ == "__main__":
        import torch._dynamo  # noqa: F401  (optimizers import it lazily, slowly: do it once, before forking)
        import torch.multiprocessing as mp
        mp.start_processes(worker, args=(sys.argv[1], sys.argv[2]), nprocs=2, start_method="fork")
''')


def test_two_processes_equal_one_process_with_the_global_batch(tmp_path):
    """Two processes on the CPU (gloo, env as torchrun sets it): rank 0's weights are broadcast, the data
    sharded, the gradients averaged, so the result equals one process with the global batch."""
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    two = subprocess.Popen([sys.executable, str(script), str(tmp_path / "two"), port], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    one = _script_namespace(DDP_SCRIPT)["run"](tmp_path / "one", 8)
    assert one.step == 4
    stdout, stderr = two.communicate(timeout=300)
    assert two.returncode == 0, stderr[-2000:]
    # 16 samples / (2 x 4) per step, 2 epochs; each loss ran inside DDP's forward (its all-reduce hooks)
    assert stdout.count("DONE 4 in_ddp=[True] resumed=4") == 2, stdout
    got = load_tensors(tmp_path / "two" / "checkpoint.safetensors")
    want = load_tensors(tmp_path / "one" / "checkpoint.safetensors")
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "two" / "state").iterdir()) == [
        "step-00000004.rank0.rng.safetensors", "step-00000004.rank1.rng.safetensors", "step-00000004.safetensors"]
    # one process cannot take over the two processes' run: one line naming both sizes and --resume
    saved_by_two = r"cannot resume on 1 process\(es\), the run was saved by 2;.*without --resume"
    with pytest.raises(ClipsuiteError, match=saved_by_two):
        _script_namespace(DDP_SCRIPT)["run"](tmp_path / "two", 4, resume=True)


class Augmented(Regression):
    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:  # random augmentation on every read
        return {"x": self.x[i] + 0.1 * torch.randn(5), "y": self.y[i]}


def test_worker_processes_do_not_change_the_result(tmp_path):
    """Each sample is drawn under its own seed, so augmentation does not depend on the worker count."""
    weights = []
    for workers in (0, 2):
        task = LinearTask()
        cfg = TrainConfig(output_dir=tmp_path / f"w{workers}", epochs=2, batch_size=5, lr=0.05, num_workers=workers,
                          progress=False)
        Trainer(task, cfg).fit(Augmented())
        weights.append(task.module.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_a_user_dataloader_trains_like_the_dataset(tmp_path):
    from_dataset, _ = _fit(tmp_path, "ds", shuffle=False)
    task = LinearTask()
    cfg = TrainConfig(output_dir=tmp_path / "dl", epochs=2, lr=0.05, optimizer="sgd", momentum=0.0,
                      schedule="constant", progress=False)
    result = Trainer(task, cfg).fit(torch.utils.data.DataLoader(Regression(), batch_size=8))
    assert result.step == 6
    torch.testing.assert_close(task.module.weight, from_dataset.module.weight)


def test_unusable_data_and_damaged_state_are_one_line_errors(tmp_path):
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from ()

    with pytest.raises(InputError, match="map-style Dataset"):
        Trainer(LinearTask(), TrainConfig(output_dir=tmp_path / "s", progress=False)).fit(Stream())
    _fit(tmp_path, "d", max_steps=1)
    (tmp_path / "d" / "trainer_state.json").write_text("{not json")
    with pytest.raises(InputError, match=r"trainer_state.json: malformed JSON at line 1"):
        _fit(tmp_path, "d", resume=True)
    with pytest.raises(ClipsuiteError, match="weight 'weight' does not fit this model"):
        load_trainable(torch.nn.Linear(3, 1), tmp_path / "d" / "checkpoint.safetensors")
    _fit(tmp_path, "old", max_steps=1)
    record = json.loads((tmp_path / "old" / "trainer_state.json").read_text())
    (tmp_path / "old" / "trainer_state.json").write_text(json.dumps({**record, "format": 1}))
    with pytest.raises(ClipsuiteError, match="a trainer state of format 1, this clipsuite resumes format 2"):
        _fit(tmp_path, "old", resume=True)


class WatchedTask(LinearTask):
    """Notes after each step whether a checkpoint is in force yet, and where its frozen helper went."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.state_file = out / "trainer_state.json"
        self.seen: list[bool] = []
        self.helper = torch.nn.Linear(5, 5).requires_grad_(False)  # frozen, not part of the module
        self.placed: list[torch.device] = []

    def frozen_modules(self) -> list[torch.nn.Module]:
        return [self]  # type: ignore[list-item]  # a Placeable: records the move

    def to(self, device: torch.device) -> WatchedTask:
        self.placed.append(torch.device(device))
        self.helper.to(device)
        return self

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features = batch["x"] + 0.0 * self.helper(batch["x"])
        return {"loss": torch.nn.functional.mse_loss(self.module(features), batch["y"])}

    def after_step(self) -> None:
        self.seen.append(self.state_file.exists())


@pytest.mark.parametrize(("every", "first_checkpoint_after"), [(0, None), (None, 3), (2, 2)])
def test_checkpoint_every_zero_writes_only_the_final_checkpoint(tmp_path, every, first_checkpoint_after):
    # 20 samples / batch 8 = 3 steps per epoch, 2 epochs
    task = WatchedTask(tmp_path / "c")
    cfg = TrainConfig(output_dir=tmp_path / "c", epochs=2, batch_size=8, lr=0.05, checkpoint_every=every,
                      progress=False)
    result = Trainer(task, cfg).fit(Regression())
    # after_step runs before the step's checkpoint: step k sees the checkpoints of steps < k
    first = task.seen.index(True) if True in task.seen else None
    assert first == first_checkpoint_after
    assert json.loads((tmp_path / "c" / "trainer_state.json").read_text())["step"] == result.step == 6
    torch.testing.assert_close(load_tensors(result.checkpoint)["weight"], task.module.weight.detach())
    assert sorted(p.name for p in (tmp_path / "c" / "state").iterdir()) == [
        "step-00000006.rank0.rng.safetensors", "step-00000006.safetensors"]
    assert [d.type for d in task.placed] == ["cuda" if torch.cuda.is_available() else "cpu"]


def test_tasks_are_checked_against_the_protocol(tmp_path):
    from clipsuite.core.train import TrainTask
    from clipsuite.core.train.task import Evaluates, HoldsFrozen, split_loss

    assert isinstance(LinearTask(), TrainTask) and isinstance(LinearTask(), Evaluates)
    assert not isinstance(LinearTask(), HoldsFrozen) and isinstance(WatchedTask(tmp_path), HoldsFrozen)

    class NoLoss:
        module = torch.nn.Linear(2, 1)

    with pytest.raises(ClipsuiteError, match="NoLoss: a training task needs a 'loss"):
        Trainer(NoLoss(), TrainConfig(output_dir=tmp_path))  # type: ignore[arg-type]
    with pytest.raises(ClipsuiteError, match="must return a tensor or a dict holding 'loss'"):
        split_loss({"mse": torch.tensor(1.0)})
    loss, parts = split_loss({"loss": torch.tensor(2.0), "ce": torch.tensor(1.5), "logits": torch.ones(3)})
    assert float(loss) == 2.0 and sorted(parts) == ["ce", "loss"]  # only one-element tensors are logged
