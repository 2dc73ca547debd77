"""The clipsuite-brain CLI on the synthetic subject: fit -> evaluate -> decode, encode; bad input."""

from __future__ import annotations

import csv
import json
import shutil

import nibabel as nib
import numpy as np
from typer.testing import CliRunner

from clipsuite.brain_app.main import app

runner = CliRunner()


def _opts(*extra):
    return [*extra, "--model", "tiny", "--device", "cpu"]


def test_fit_evaluate_decode_encode(subject, tmp_path):
    dec = tmp_path / "dec"
    result = runner.invoke(app, ["fit", str(subject), "-o", str(dec), "--alphas", "1:1e5:8",
                                 "--cache", str(tmp_path / "cache"), *_opts()])
    assert result.exit_code == 0, result.output
    assert (dec / "image.safetensors").is_file() and (dec / "decoder.json").is_file()
    # the alphas chosen per CLIP space and the cross-validated score, on the console and in the decoder's meta
    for space in ("image", "text"):
        assert f"{space}: alphas chosen " in result.output and "from a grid of 8 over 1 to 1e+05" in result.output
        assert f"{space}: leave-one-out cross-validated R^2 " in result.output
    choice = json.loads((dec / "decoder.json").read_text())["alpha_choice"]["image"]
    assert choice["grid_low"] == 1 and choice["grid_high"] == 1e5 and 0 <= choice["at_low_edge"] <= 1
    metrics_csv = tmp_path / "m.csv"
    result = runner.invoke(app, ["evaluate", str(subject), "-d", str(dec), "-o", str(metrics_csv),
                                 "--cache", str(tmp_path / "cache"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    metrics = {row["metric"]: float(row["value"]) for row in csv.DictReader(open(metrics_csv))}
    chance = 1 / metrics["image_n_way"]
    # the synthetic subject's voxels carry the image embeddings: retrieval far above chance both ways
    assert metrics["image_image_retrieval"] > 10 * chance and metrics["image_brain_retrieval"] > 10 * chance
    assert metrics["image_pairwise"] > 0.9
    assert metrics["image_category_top1"] > 1.5 / metrics["image_category_n_way"]
    result = runner.invoke(app, ["decode", str(subject), "-d", str(dec), "-o", str(tmp_path / "d.safetensors"),
                                 "--cache", str(tmp_path / "cache"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "d.csv")))
    assert len(rows) == 40 and np.mean([int(r["correct"]) for r in rows]) > 0.25

    out = tmp_path / "enc"
    result = runner.invoke(app, ["encode", str(subject), "-o", str(out), "--alphas", "1e-1:1e4:8",
                                 "--cache", str(tmp_path / "cache"), *_opts()])
    assert result.exit_code == 0, result.output
    r_img = nib.load(out / "r.nii.gz")
    mask = nib.load(subject.parent / "mask.nii.gz")
    np.testing.assert_array_equal(r_img.affine, mask.affine)
    r = np.asarray(r_img.dataobj)
    strength = np.load(subject.parent / "truth.npz")["strength"]
    signal, noise = r[strength > 0], r[(strength == 0) & np.isfinite(r)]
    assert signal.mean() > 0.4 > 0.1 > abs(noise.mean())
    # among signal voxels, r follows the hidden strength
    assert np.corrcoef(strength[strength > 0], signal)[0, 1] > 0.5
    assert (out / "r.png").stat().st_size > 1000 and (out / "noise_ceiling.nii.gz").is_file()


def test_ridge_fit_says_when_the_alpha_grid_should_be_widened(subject, tmp_path):
    # a grid far above the best alphas: the dimensions crowd at its low edge, and the command says to widen it
    result = runner.invoke(app, ["fit", str(subject), "-o", str(tmp_path / "dec"), "--alphas", "1e6:1e8:3",
                                 "--cache", str(tmp_path / "cache"), *_opts()])
    assert result.exit_code == 0, result.output
    assert "widen the alpha grid: many dimensions chose its low (" in result.output
    assert "try --alphas 1e+04:1e+08:5" in result.output  # two decades lower, at the grid's spacing


def test_bad_input_one_line_exit_2(subject, tmp_path):
    result = runner.invoke(app, ["fit", str(tmp_path / "nope.json"), *_opts()])
    assert result.exit_code == 2 and "nope.json: file not found (dataset config)" in result.output
    result = runner.invoke(app, ["fit", str(subject), "--cv", "x", *_opts()])
    assert result.exit_code == 2 and "--cv 'x'" in result.output
    bad = tmp_path / "s"
    shutil.copytree(subject.parent, bad, ignore=shutil.ignore_patterns("stimuli", ".clipsuite-cache"))
    img = nib.load(bad / "betas_session02.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[1:], img.affine), bad / "betas_session02.nii.gz")
    out = tmp_path / "never"
    result = runner.invoke(app, ["fit", str(bad / "dataset.json"), "-o", str(out), *_opts()])
    assert result.exit_code == 2
    assert "betas_session02.nii.gz: volume grid" in result.output and "Traceback" not in result.output
    assert not out.exists()
    (bad / "dataset.json").write_text(json.dumps({"format": "nifti", "mask": "mask.nii.gz"}))
    result = runner.invoke(app, ["encode", str(bad / "dataset.json"), *_opts()])
    assert result.exit_code == 2 and "'betas' must be a non-empty list" in result.output


def test_paths_checked_before_torch(subject, tmp_path, before_torch):
    """Every command answers a missing file (the config, a file it names, the decoder folder) with one
    line and exit 2, in a fresh process that never imported torch."""
    broken = tmp_path / "broken.json"
    config = {k: str(subject.parent / v) if k in ("mask", "trials", "stimuli") else v
              for k, v in json.loads(subject.read_text()).items()}
    broken.write_text(json.dumps({**config, "betas": [str(subject.parent / "betas_session01.nii.gz"),
                                                      str(tmp_path / "gone.nii.gz")]}))
    missing = str(tmp_path / "nope.json")
    cases = [
        (["fit", missing], "nope.json: file not found (dataset config)"),
        (["fit", str(broken), "--decoder", "mlp"], "betas[1] names"),
        (["encode", str(broken)], "gone.nii.gz, which does not exist"),
        (["decode", missing, "-d", str(tmp_path)], "nope.json: file not found"),
        (["decode", str(subject), "-d", str(tmp_path / "nodec")], "nodec: folder not found (--decoder folder)"),
        (["evaluate", str(subject), "-d", str(tmp_path)], "not a decoder folder (no decoder.json"),
        (["evaluate", str(broken), "-d", str(tmp_path)], "gone.nii.gz"),
    ]
    for argv, message in cases:
        report, lines = before_torch("clipsuite.brain_app.main", argv)
        assert report == {"code": 2, "torch": False, "open_clip": False}, (argv, lines)
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (argv, lines)
    assert not (tmp_path / "decoded.safetensors").exists() and not (tmp_path / "brain_decoder").exists()
