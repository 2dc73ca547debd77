"""The MLP decoder: module, save/load, resume after an interruption on the core Trainer, and the CLI
(`fit --decoder mlp`, then `evaluate` / `decode`) recovering the synthetic subject's signal."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from clipsuite.brain.decoders import MLPDecoder, read_decoder
from clipsuite.brain.losses import LossSchedule
from clipsuite.brain.methods.mlp import BrainMLP, MLPConfig
from clipsuite.brain.train import DecoderDataset, DecoderObjective, DecoderTask
from clipsuite.brain_app.main import app
from clipsuite.core.checkpoints import load_tensors
from clipsuite.core.errors import InputError
from clipsuite.core.train import TrainConfig, Trainer, read_metrics

torch.set_num_threads(1)
runner = CliRunner()


def test_module_heads_save_load_and_bad_input(tmp_path):
    torch.manual_seed(0)
    model = BrainMLP(MLPConfig(n_voxels=30, embed_dim=8, hidden=16, blocks=2, projector=12)).eval()
    x = torch.randn(5, 30)
    out = model(x)
    assert set(out) == {"image", "text"} and out["image"].shape == (5, 8)
    # the residual blocks: block(x) + x, written out
    h = model.stem(x)
    for block in model.blocks:
        h = block(h) + h
    torch.testing.assert_close(out["text"], model.heads["text"](h))
    MLPDecoder(model).save(tmp_path)
    (tmp_path / "decoder.json").write_text(json.dumps({"kind": "mlp-decoder", "n_voxels": 30}))
    loaded, meta = read_decoder(tmp_path)
    assert meta["kind"] == "mlp-decoder"
    got = loaded.predict(x.numpy())
    np.testing.assert_array_equal(got["image"], out["image"].detach().numpy())
    with pytest.raises(InputError, match=r"expects \(batch, 30\) voxels"):
        model(torch.randn(2, 31))
    (tmp_path / "decoder.json").write_text(json.dumps({"kind": "nonsense"}))
    with pytest.raises(InputError, match="not a clipsuite brain decoder"):
        read_decoder(tmp_path)


class _Interrupted(RuntimeError):
    pass


class _Stopping(DecoderDataset):
    """Raises after ``limit`` samples were read: a run stopped mid-epoch."""

    def __init__(self, *args, limit: int) -> None:
        super().__init__(*args)
        self.limit, self.reads = limit, 0

    def __getitem__(self, index):
        self.reads += 1
        if self.reads > self.limit:
            raise _Interrupted("stopped")
        return super().__getitem__(index)


def _run(out, data, resume=False):
    cfg = TrainConfig(output_dir=out, epochs=3, batch_size=8, lr=1e-3, checkpoint_every=2, log_every=1,
                      resume=resume, progress=False)
    torch.manual_seed(0)
    objective = DecoderObjective(BrainMLP(MLPConfig(n_voxels=20, embed_dim=6, hidden=16, blocks=1)),
                                 LossSchedule(3, mixup_fraction=0.34), 0.5)
    return Trainer(DecoderTask(objective), cfg).fit(data)


def test_resume_after_a_stop_gives_the_same_weights_and_schedule(tmp_path):
    g = torch.Generator().manual_seed(0)
    voxels = torch.randn(32, 20, generator=g).numpy()
    targets = {s: torch.randn(32, 6, generator=g).numpy() for s in ("image", "text")}
    reference = _run(tmp_path / "ref", DecoderDataset(voxels, targets))
    assert reference.step == 12
    # 4 steps per epoch; stop inside epoch 1 after the step-4 checkpoint (2 checkpoints in force at most)
    with pytest.raises(_Interrupted):
        _run(tmp_path / "cut", _Stopping(voxels, targets, limit=8 * 5 + 3))
    resumed = _run(tmp_path / "cut", DecoderDataset(voxels, targets), resume=True)
    assert resumed.resumed_from == 4 and resumed.step == 12
    want, got = load_tensors(tmp_path / "ref" / "checkpoint.safetensors"), load_tensors(
        tmp_path / "cut" / "checkpoint.safetensors")
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key
    state = load_tensors(tmp_path / "cut" / "state" / "step-00000012.safetensors")
    assert int(state["b.steps"]) == 12  # the schedule's step counter is checkpointed
    logged = [e for e in read_metrics(tmp_path / "cut") if "loss" in e]
    assert [e["bimixco"] for e in logged] == [1.0] * 4 + [0.0] * 8  # first third BiMixCo, then SoftCLIP
    ref_log = [e for e in read_metrics(tmp_path / "ref") if "loss" in e]
    assert [e["loss"] for e in logged] == [e["loss"] for e in ref_log]


def test_cli_fit_mlp_then_evaluate_and_decode(subject, tmp_path):
    dec, cache = tmp_path / "mlp", tmp_path / "cache"
    result = runner.invoke(app, ["fit", str(subject), "-o", str(dec), "--decoder", "mlp", "--epochs", "24",
                                 "--hidden", "256", "--blocks", "2", "--lr", "1e-3", "--batch-size", "32",
                                 "--checkpoint-every", "0", "--cache", str(cache), "--model", "tiny",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    meta = json.loads((dec / "decoder.json").read_text())
    assert meta["kind"] == "mlp-decoder" and meta["mlp"]["hidden"] == 256 and meta["trained_steps"] == 24 * 8
    phases = [e["bimixco"] for e in read_metrics(dec) if "loss" in e]
    assert phases[0] == 1.0 and phases[-1] == 0.0
    metrics_csv = tmp_path / "m.csv"
    result = runner.invoke(app, ["evaluate", str(subject), "-d", str(dec), "-o", str(metrics_csv),
                                 "--cache", str(cache), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    m = {row["metric"]: float(row["value"]) for row in csv.DictReader(open(metrics_csv))}
    chance = 1 / m["image_n_way"]                   # 40 held-out stimuli: 2.5%
    assert m["image_image_retrieval"] > 4 * chance and m["image_brain_retrieval"] > 4 * chance
    assert m["image_pairwise"] > 0.8
    assert m["image_category_top1"] > 1.5 / m["image_category_n_way"]
    result = runner.invoke(app, ["decode", str(subject), "-d", str(dec), "-o", str(tmp_path / "d.safetensors"),
                                 "--cache", str(cache), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d.csv").is_file()


def test_cli_mlp_bad_options_one_line_before_work(subject, tmp_path):
    result = runner.invoke(app, ["fit", str(subject), "--decoder", "cnn"])
    assert result.exit_code == 2 and "--decoder 'cnn': expected ridge or mlp" in result.output
    result = runner.invoke(app, ["fit", str(subject), "--decoder", "mlp", "--epochs", "0", "--lr", "-1",
                                 "--precision", "fp12", "--hidden", "0", "--blocks", "-1"])
    assert result.exit_code == 2
    assert "--epochs must be >= 1" in result.output and "--lr must be > 0" in result.output
    assert "--hidden must be >= 1 (got 0)" in result.output and "--blocks must be >= 0 (got -1)" in result.output
    assert "--precision" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["fit", str(subject), "--decoder", "mlp", "-o", str(tmp_path / "d"), "--run-dir",
                                 str(tmp_path / "d" / "run"), "--model", "tiny", "--device", "cpu",
                                 "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 2 and "must lie outside the decoder folder" in result.output
    assert not (tmp_path / "d").exists()
