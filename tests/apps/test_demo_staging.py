"""The umbrella demo writes its report folder whole (staged, then swapped in) or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clipsuite.cli import demo
from clipsuite.cli.demo import DemoSettings, run_demo

torch.set_num_threads(1)  # shared CPUs: one thread each is faster


def _small(output: Path) -> DemoSettings:
    return DemoSettings(output=output, train_images=48, test_images=24, steps=2, batch_size=16, domains=False)


def test_demo_report_is_swapped_in_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "demo"
    summary = run_demo(_small(out))
    assert summary["zero_shot"]["images"] == 24 and summary["train"]["steps"] == 2
    assert json.loads((out / "summary.json").read_text())["zero_shot"]["images"] == 24
    assert {"index.html", "loss.png", "query_hits.png", "model", "index", "data"} <= {p.name for p in out.iterdir()}
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]
    before = (out / "summary.json").read_bytes()

    def broken_search(*args: object, **kwargs: object) -> dict[str, object]:
        raise RuntimeError("index step failed")

    monkeypatch.setattr(demo, "_search", broken_search)
    with pytest.raises(RuntimeError, match="index step failed"):
        run_demo(_small(out))
    assert (out / "summary.json").read_bytes() == before  # the earlier report stands
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # and no half-built sibling is left
