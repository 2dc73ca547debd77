"""The anomaly report: written whole beside other files, or not at all."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipsuite.anomaly.methods.base import AnomalyResult
from clipsuite.anomaly.report import write_report
from clipsuite.core.errors import InputError


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(path)
        paths.append(path)
    return paths


def test_report_rows_and_a_users_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    paths = _images(out / "data", 3)  # the user's data in the folder asked for: refused, left alone
    result = AnomalyResult(torch.tensor([0.1, 0.9, 0.5]), torch.rand(3, 4, 4))
    with pytest.raises(InputError, match=r"run holds files this command did not write \(data/\)"):
        write_report(out, paths, result, threshold=0.5)
    assert sorted(p.name for p in out.iterdir()) == ["data"]
    out = tmp_path / "report"
    page = write_report(out, paths, result, threshold=0.5)
    assert page == out / "index.html"
    rows = list(csv.DictReader((out / "scores.csv").read_text().splitlines()))
    assert [(Path(r["image"]).name, float(r["score"]), r["anomalous"]) for r in rows] == [
        ("000.png", pytest.approx(0.1), "False"), ("001.png", pytest.approx(0.9), "True"),
        ("002.png", pytest.approx(0.5), "True")]
    assert sorted(p.name for p in out.iterdir()) == [".clipsuite-output.json", "heatmaps", "index.html", "scores.csv",
                                                     "scores.json"]
    assert json.loads((out / "scores.json").read_text())["threshold"] == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "run"]
    assert "16x16 px, shown enlarged" in page.read_text()


def test_failure_mid_report_leaves_the_old_report_and_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "run"
    paths = _images(tmp_path / "images", 3)
    write_report(out, paths[:2], AnomalyResult(torch.tensor([0.2, 0.4]), torch.rand(2, 4, 4)))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    paths[2].write_bytes(b"not a png")  # the third image fails after two heatmaps are written
    with pytest.raises(InputError, match="002.png: not a readable image"):
        write_report(out, paths, AnomalyResult(torch.tensor([0.1, 0.2, 0.3]), torch.rand(3, 4, 4)))
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "run"]
