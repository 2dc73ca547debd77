"""A fitted decoder is applied only where it fits: the voxels it was fitted on, and held-out stimuli it
never trained on (evaluate/decode refuse in one line and write nothing)."""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from clipsuite.brain import synthetic
from clipsuite.brain_app.main import app

runner = CliRunner()


def _fit(config, out, cache):
    result = runner.invoke(app, ["fit", str(config), "-o", str(out), "--alphas", "1:1e5:4", "--cache", str(cache),
                                 "--model", "tiny", "--device", "cpu"])
    assert result.exit_code == 0, result.output


def _run(command, config, decoder, out, cache):
    return runner.invoke(app, [command, str(config), "-d", str(decoder), "-o", str(out), "--cache", str(cache),
                               "--device", "cpu"])


def test_held_out_stimuli_that_were_trained_on_are_refused(subject, tmp_path):
    # no split column: the test stimuli are a seeded draw over the dataset's stimuli, so a dataset with more
    # trials (here all three sessions) draws another test set, half of it the decoder's training stimuli
    root = subject.parent
    rows = list(csv.DictReader(open(root / "stimuli.csv")))
    with open(tmp_path / "stimuli.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stimulus", "image", "caption", "category"])
        writer.writerows([r["stimulus"], str(root / r["image"]), r["caption"], r["category"]] for r in rows)
    trials = list(csv.reader(open(root / "trials.tsv"), delimiter="\t"))
    with open(tmp_path / "trials12.tsv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerows([trials[0], *(r for r in trials[1:] if r[0] in ("1", "2"))])
    base = json.loads(subject.read_text())
    base.update(mask=str(root / base["mask"]), betas=[str(root / b) for b in base["betas"]],
                trials=str(root / base["trials"]), stimuli="stimuli.csv")
    every = tmp_path / "all.json"
    every.write_text(json.dumps(base))
    two = tmp_path / "two_sessions.json"
    two.write_text(json.dumps({**base, "betas": base["betas"][:2], "trials": "trials12.tsv"}))
    cache = tmp_path / "cache"
    _fit(two, tmp_path / "dec", cache)
    result = _run("evaluate", two, tmp_path / "dec", tmp_path / "same.csv", cache)
    assert result.exit_code == 0, result.output  # the dataset it was fitted on: its own split, as before
    for command, out in (("evaluate", tmp_path / "m.csv"), ("decode", tmp_path / "d.safetensors")):
        result = _run(command, every, tmp_path / "dec", out, cache)
        assert result.exit_code == 2, result.output
        assert "held-out stimuli" in result.output and "were training stimuli of the decoder" in result.output
        assert "Traceback" not in result.output and not out.exists()


def test_voxels_of_another_mask_or_subject_are_refused(subject, tmp_path):
    # another subject on the same grid keeps as many voxels (same mask, three constant ones dropped) but not
    # the same ones: the columns would feed the decoder's weights for other voxels
    other = synthetic.make_subject(tmp_path / "other", n_train=40, n_test=10, seed=1)
    cache = tmp_path / "cache"
    _fit(subject, tmp_path / "dec", cache)
    for command, out in (("evaluate", tmp_path / "m.csv"), ("decode", tmp_path / "d.safetensors")):
        result = _run(command, other, tmp_path / "dec", out, cache)
        assert result.exit_code == 2, result.output
        assert "usable voxels are not the ones the decoder was fitted on" in result.output
        assert not out.exists()
