"""The MLP decoder's run remembers its flags on --resume, trains on --device, and its VAE variant
(--vae-latent) trains, decodes above chance and reloads with the option."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from clipsuite.brain.decoders import read_decoder
from clipsuite.brain.methods.mlp import BrainMLP, MLPConfig
from clipsuite.brain.train import vae_terms
from clipsuite.brain_app.main import app
from clipsuite.core.train import lr_factor, read_metrics

torch.set_num_threads(1)
runner = CliRunner()


def test_resume_remembers_the_run_flags(subject, tmp_path):
    dec, cache = tmp_path / "mlp", tmp_path / "cache"
    start = ["fit", str(subject), "-o", str(dec), "--decoder", "mlp", "--epochs", "1", "--hidden", "32",
             "--blocks", "1", "--lr", "2e-3", "--batch-size", "64", "--seed", "3", "--model", "tiny",
             "--device", "cpu", "--cache", str(cache)]
    result = runner.invoke(app, start)
    assert result.exit_code == 0, result.output
    # the command says what it trained: steps, final loss, the held-out retrieval; no resume yet
    assert "trained 4 steps (1 epoch); final loss " in result.output
    assert "held-out: image_brain_retrieval" in result.output
    assert "resumed" not in result.output
    stored = json.loads((tmp_path / "mlp.run" / "config.json").read_text())["options"]
    assert stored["hidden"] == 32 and stored["model"] == "tiny" and stored["dataset"] == str(subject.resolve())
    # only --resume and a raised --epochs: the dataset, sizes, lr, batch, seed and model come back
    result = runner.invoke(app, ["fit", "-o", str(dec), "--resume", "--epochs", "2", "--device", "cpu",
                                 "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    meta = json.loads((dec / "decoder.json").read_text())
    assert meta["mlp"]["hidden"] == 32 and meta["mlp"]["blocks"] == 1 and meta["clip"]["model"] == "tiny"
    train = meta["fit"]["train"]
    assert (train["lr"], train["batch_size"], train["seed"], train["epochs"]) == (2e-3, 64, 3, 2)
    assert meta["trained_steps"] == 2 * 4  # 240 training trials in batches of 64: 4 steps per epoch
    steps = [e["step"] for e in read_metrics(tmp_path / "mlp.run") if "loss" in e]
    assert steps == list(range(1, 9))      # one run: the resumed epoch continued the first
    assert "resumed at step 4" in result.output and "trained 8 steps (2 epochs), 4 of them now" in result.output
    # the longer run's cosine from its first resumed step (the old one ended at lr 0.0 after step 4)
    lrs = {e["step"]: e["lr"] for e in read_metrics(tmp_path / "mlp.run") if "lr" in e}
    assert lrs[5] == pytest.approx(2e-3 * lr_factor(4, 8)) and lrs[5] > 0
    # resumed once more with nothing left to train: says so, and which flag trains longer
    result = runner.invoke(app, ["fit", "-o", str(dec), "--resume", "--device", "cpu", "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    assert "resumed at step 8" in result.output and "nothing left to train" in result.output
    assert "raise --epochs" in result.output and "final loss " in result.output
    # a flag typed again with another value is refused, naming it; nothing is trained
    result = runner.invoke(app, ["fit", "-o", str(dec), "--resume", "--hidden", "64", "--lr", "2e-3",
                                 "--device", "cpu", "--cache", str(cache)])
    assert result.exit_code == 2 and "--hidden 64 (the run has 32)" in result.output
    assert "--lr" not in result.output.split("but", 1)[1] and "Traceback" not in result.output
    result = runner.invoke(app, ["fit", str(subject), "-o", str(dec), "--decoder", "ridge", "--resume"])
    assert result.exit_code == 2 and "--resume continues an MLP run" in result.output


def test_vae_terms_written_out():
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, -0.4]])
    recon, voxels = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.5, 2.0, 2.0]])
    got = vae_terms({"mu": mu, "logvar": logvar, "recon": recon}, voxels)
    kl = [0.5 * (m * m + np.exp(v) - 1 - v) for m, v in ((0.5, 0.2), (-1.0, -0.4))]
    assert abs(float(got["loss_kl"]) - np.mean(kl)) < 1e-6
    assert abs(float(got["loss_recon"]) - (0.25 + 0 + 1) / 3) < 1e-6
    model = BrainMLP(MLPConfig(n_voxels=3, embed_dim=4, hidden=8, blocks=1, vae_latent=2))
    x = torch.randn(5, 3)
    model.train()
    assert not torch.equal(model(x)["image"], model(x)["image"])   # a sampled code while training
    model.eval()
    assert torch.equal(model(x)["image"], model(x)["image"])       # the posterior mean when decoding


def test_vae_variant_trains_decodes_and_reloads(subject, tmp_path):
    dec, cache = tmp_path / "vae", tmp_path / "cache"
    result = runner.invoke(app, ["fit", str(subject), "-o", str(dec), "--decoder", "mlp", "--vae-latent", "64",
                                 "--epochs", "24", "--hidden", "256", "--blocks", "2", "--lr", "1e-3",
                                 "--checkpoint-every", "0", "--cache", str(cache), "--model", "tiny",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    log = [e for e in read_metrics(dec) if "loss" in e]
    first, last = log[:8], log[-8:]                            # the first and the last epoch
    mean = lambda rows, key: float(np.mean([e[key] for e in rows]))  # noqa: E731
    assert mean(last, "loss_recon") < 0.9 * mean(first, "loss_recon")
    assert mean(last, "loss") < mean(first, "loss") and "loss_kl" in last[0]
    decoder, meta = read_decoder(dec)
    assert meta["mlp"]["vae_latent"] == 64 and decoder.model.config.vae_latent == 64
    metrics_csv = tmp_path / "m.csv"
    result = runner.invoke(app, ["evaluate", str(subject), "-d", str(dec), "-o", str(metrics_csv),
                                 "--cache", str(cache), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    m = {row["metric"]: float(row["value"]) for row in csv.DictReader(open(metrics_csv))}
    chance = 1 / m["image_n_way"]
    # measured: image retrieval 7.5%, brain retrieval 17.5% among 40 (chance 2.5%), pairwise 0.79
    assert m["image_image_retrieval"] > 2 * chance and m["image_brain_retrieval"] > 4 * chance
    assert m["image_pairwise"] > 0.7
