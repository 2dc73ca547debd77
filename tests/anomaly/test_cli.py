"""clipsuite-anomaly detect / evaluate end to end on the tiny backbone and synthetic data."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from clipsuite.anomaly_app.main import app

runner = CliRunner()
TINY = ["--model", "tiny", "--device", "cpu"]


def _run(*args: str):
    return runner.invoke(app, [*args], catch_exceptions=False)


def test_detect_zero_shot_writes_report(mvtec_root, tmp_path):
    images = mvtec_root / "bottle" / "test" / "stain"
    out = tmp_path / "report"
    result = _run("detect", str(images), "--method", "winclip", "--class-name", "bottle", "--out", str(out),
                  "--threshold", "0.5", *TINY)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "scores.csv").read_text().splitlines()))
    assert [Path(r["image"]).name for r in rows] == ["000.png", "001.png"]
    assert all(0 <= float(r["score"]) <= 1 for r in rows)
    summary = json.loads((out / "scores.json").read_text())
    assert summary["method"] == "winclip" and len(summary["images"]) == 2
    heatmap = Image.open(out / rows[0]["heatmap"])
    assert heatmap.size == (64, 64)  # at the input image's resolution
    assert "heatmaps/0000_000.png" in (out / "index.html").read_text()


def test_detect_few_shot_and_odd_image_modes(mvtec_root, tmp_path):
    folder = tmp_path / "queries"
    folder.mkdir()
    source = Image.open(mvtec_root / "bottle" / "test" / "scratch" / "000.png")
    source.convert("L").save(folder / "gray.png")
    source.convert("RGBA").save(folder / "rgba.png")
    Image.fromarray(np.asarray(source.convert("L")).astype(np.uint16) * 257).save(folder / "deep16.png")
    out = tmp_path / "few"
    result = _run("detect", str(folder), "--method", "patch_memory", "--reference",
                  str(mvtec_root / "bottle" / "train" / "good"), "--shots", "2", "--out", str(out),
                  "--validation", str(mvtec_root / "bottle" / "test"), *TINY)
    assert result.exit_code == 0, result.output
    assert len(list((out / "heatmaps").glob("*.png"))) == 3
    summary = json.loads((out / "scores.json").read_text())
    assert summary["threshold"] is not None and "threshold from" in result.output
    assert all(row["anomalous"] == (row["score"] >= summary["threshold"]) for row in summary["images"])


def test_detect_skips_a_corrupt_image_and_lists_it_or_fails_on_request(mvtec_root, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(mvtec_root / "bottle" / "test" / "good", folder)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "report"
    result = runner.invoke(app, ["detect", str(folder), "--out", str(out), "--method", "winclip", *TINY])
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable image" in result.output and "broken.png" in result.output
    rows = list(csv.DictReader((out / "scores.csv").read_text().splitlines()))
    assert [Path(r["image"]).name for r in rows] == ["000.png", "001.png", "002.png", "broken.png"]
    assert [r["score"] == "" for r in rows] == [False, False, False, True]
    assert "broken.png: corrupt image" in rows[3]["error"] and rows[0]["error"] == ""
    summary = json.loads((out / "scores.json").read_text())
    assert len(summary["images"]) == 3 and [Path(s["path"]).name for s in summary["skipped"]] == ["broken.png"]
    assert "skipped 1 unreadable image(s)" in (out / "index.html").read_text()
    assert len(list((out / "heatmaps").glob("*.png"))) == 3

    never = tmp_path / "never"
    result = runner.invoke(app, ["detect", str(folder), "--out", str(never), "--method", "winclip",
                                 "--on-error", "fail", *TINY])
    assert result.exit_code == 2
    assert "broken.png" in result.output and "Traceback" not in result.output
    assert not never.exists() and not list(tmp_path.glob(".never*"))
    result = runner.invoke(app, ["detect", str(folder / "000.png"), "--method", "patch_memory", "--out", str(never),
                                 *TINY])
    assert result.exit_code == 2 and "needs normal reference images" in result.output
    (tmp_path / "bad_only").mkdir()
    shutil.copy(folder / "broken.png", tmp_path / "bad_only" / "x.png")
    result = runner.invoke(app, ["detect", str(tmp_path / "bad_only"), "--out", str(never), *TINY])
    assert result.exit_code == 2 and "none of the 1 images could be read" in result.output
    assert not never.exists()


def test_references_of_another_size_are_resized_like_the_queries(mvtec_root, tmp_path):
    queries = mvtec_root / "bottle" / "test" / "good"  # 64x64
    scores = {}
    for side in (64, 80):
        refs = tmp_path / f"refs{side}"
        refs.mkdir()
        Image.new("RGB", (side, side), "white").save(refs / "white.png")  # uniform: the same after any resize
        (refs / "broken.png").write_bytes(b"not an image")  # skipped, and named
        out = tmp_path / f"out{side}"
        result = runner.invoke(app, ["detect", str(queries), "--method", "patch_memory", "--reference", str(refs),
                                     "--out", str(out), *TINY])
        assert result.exit_code == 0, result.output
        assert "skipped 1 unreadable reference image" in result.output
        scores[side] = [row["score"] for row in json.loads((out / "scores.json").read_text())["images"]]
    assert scores[64] == scores[80] and len(scores[64]) == 3


def test_evaluate_table_csv_and_mask_checks(mvtec_root, tmp_path):
    table = tmp_path / "metrics.csv"
    result = _run("evaluate", str(mvtec_root), "--method", "winclip", "--shots", "1", "--out", str(table), *TINY)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert [r["category"] for r in rows] == ["bottle", "carpet", "mean"]
    assert set(rows[0]) == {"category", "image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_aupro",
                            "skipped"}
    mean = np.mean([float(rows[0]["pixel_auroc"]), float(rows[1]["pixel_auroc"])])
    assert abs(float(rows[2]["pixel_auroc"]) - mean) < 1e-3
    # the CSV holds the percentages the table prints
    metric_columns = ["image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_aupro"]
    assert all(f"{float(row[m]):.1f}" in result.output for row in rows for m in metric_columns)
    assert all(1.0 < float(row["pixel_auroc"]) <= 100.0 for row in rows)
    assert [row["skipped"] for row in rows] == ["0", "0", "0"]
    # no masks at all: pixel metrics skipped with a note
    plain = tmp_path / "plain"
    shutil.copytree(mvtec_root / "carpet" / "test", plain)
    result = _run("evaluate", str(plain), "--method", "winclip", "--out", str(tmp_path / "plain.csv"), *TINY)
    assert result.exit_code == 0 and "pixel metrics skipped" in result.output
    assert "pixel_auroc" not in (tmp_path / "plain.csv").read_text().splitlines()[0]
    # a mask whose size differs from its image
    broken = tmp_path / "broken"
    shutil.copytree(mvtec_root / "bottle", broken / "bottle")
    Image.new("L", (32, 32)).save(broken / "bottle" / "ground_truth" / "stain" / "000_mask.png")
    bad_table = tmp_path / "bad.csv"
    result = runner.invoke(app, ["evaluate", str(broken), "--method", "patch_memory", "--out", str(bad_table), *TINY])
    assert result.exit_code == 2 and "000_mask.png: mask is 32x32 but its image is 64x64" in result.output
    assert not bad_table.exists()


def test_evaluate_skips_a_corrupt_test_image_and_counts_it(mvtec_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(mvtec_root / "bottle", root / "bottle")
    (root / "bottle" / "test" / "good" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    table = tmp_path / "metrics.csv"
    result = _run("evaluate", str(root), "--method", "winclip", "--out", str(table), *TINY)
    assert result.exit_code == 0, result.output
    assert "bottle: skipped 1 unreadable image(s):" in result.output and "zz_broken.png" in result.output
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert [(r["category"], r["skipped"]) for r in rows] == [("bottle", "1"), ("mean", "1")]
    # the metrics are those of the readable images alone
    (root / "bottle" / "test" / "good" / "zz_broken.png").unlink()
    clean = tmp_path / "clean.csv"
    assert _run("evaluate", str(root), "--method", "winclip", "--out", str(clean), *TINY).exit_code == 0
    clean_rows = list(csv.DictReader(clean.read_text().splitlines()))
    assert [r["image_auroc"] for r in clean_rows] == [r["image_auroc"] for r in rows]
    (root / "bottle" / "test" / "good" / "zz_broken.png").write_bytes(b"garbage")
    result = runner.invoke(app, ["evaluate", str(root), "--method", "winclip", "--out", str(tmp_path / "f.csv"),
                                 "--on-error", "fail", *TINY])
    assert result.exit_code == 2 and "zz_broken.png" in result.output and not (tmp_path / "f.csv").exists()


def test_demo_step(tmp_path):
    from clipsuite.anomaly_app.demo import run_demo_step

    lines: list[str] = []
    result = run_demo_step(tmp_path, lines.append)
    assert result.files == {"heatmap report": Path("report/index.html")} and (tmp_path / "report/index.html").is_file()
    assert result.metrics["pixel_auroc"] > 0.8  # drawn defects are found even by an untrained tiny backbone
    assert f"pixel AUROC {result.metrics['pixel_auroc']}" in result.summary[0]
    assert lines and not any(str(tmp_path) in line for line in lines)  # logs name paths inside the step folder


def test_shots_without_references_or_below_zero_are_refused(mvtec_root, tmp_path):
    """detect --shots without --reference scored zero-shot in silence; evaluate --shots -1 was a traceback."""
    good = str(mvtec_root / "bottle" / "test" / "good")
    result = _run("detect", good, "--shots", "2", "--out", str(tmp_path / "r"), *TINY)
    assert result.exit_code != 0 and "--shots 2 needs --reference" in result.output
    assert not (tmp_path / "r").exists()
    result = runner.invoke(app, ["evaluate", str(mvtec_root / "bottle"), "--method", "patch_memory", "--shots", "-1",
                                 "--out", str(tmp_path / "t.csv"), *TINY])
    assert result.exit_code != 0 and "--shots" in result.output and not (tmp_path / "t.csv").exists()


def test_library_refuses_negative_shots_and_reference_limits(mvtec_root):
    import pytest

    from clipsuite.anomaly.data import load_dataset
    from clipsuite.anomaly.pipeline import Detector
    from clipsuite.core.errors import InputError
    from clipsuite.core.models import load_model

    detector = Detector.create(load_model("tiny", device="cpu"), "patch_memory")
    category = load_dataset(mvtec_root / "bottle")[0]
    with pytest.raises(InputError, match="shots -1"):
        detector.score_category(category, shots=-1)
    with pytest.raises(InputError, match="reference limit 0"):
        detector.fit_references([s.image for s in category.train], limit=0)


def test_a_negative_or_nan_sigma_is_refused(mvtec_root, tmp_path):
    """--sigma -5 was accepted and smoothed nothing (gaussian_smooth treats sigma <= 0 as none)."""
    import pytest

    from clipsuite.anomaly.pipeline import build_method
    from clipsuite.core.errors import InputError
    from clipsuite.core.models import load_model

    result = runner.invoke(app, ["detect", str(mvtec_root / "bottle" / "test" / "good"), "--sigma", "-5",
                                 "--out", str(tmp_path / "r"), *TINY])
    assert result.exit_code != 0 and "--sigma" in result.output and not (tmp_path / "r").exists()
    tiny = load_model("tiny", device="cpu")
    for sigma in (-1.0, float("nan")):
        with pytest.raises(InputError, match="smoothing sigma"):
            build_method(tiny, "patch_memory", smoothing_sigma=sigma)
    assert build_method(tiny, "patch_memory", smoothing_sigma=0.0).smoothing_sigma == 0.0
