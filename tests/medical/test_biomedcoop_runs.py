"""biomedcoop train / compare on run configs: one option per field, every bad flag one line before torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from clipsuite.core.run_config import cli_fields
from clipsuite.medical.biomedcoop_runs import BiomedCoOpCompareRun, BiomedCoOpRun
from clipsuite.medical_app.main import app

MEDICAL = "clipsuite.medical_app.main"


@pytest.mark.parametrize(("config", "command", "own"), [
    (BiomedCoOpRun, "train", {"out", "device"}), (BiomedCoOpCompareRun, "compare", {"csv_out", "device"})])
def test_one_option_per_field(config: type, command: str, own: set[str]) -> None:
    group = typer.main.get_command(app).commands["biomedcoop"]  # type: ignore[attr-defined]
    names = {p.name for p in group.commands[command].params}
    assert names == {f.name for f, _ in cli_fields(config)} | own  # the rest is where it writes and runs


@pytest.fixture()
def split(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "split.json").write_text("{}")
    (tmp_path / "d.json").write_text("{}")
    return str(tmp_path / "split.json"), str(tmp_path / "d.json")


@pytest.mark.parametrize(("argv", "said"), [
    (["train", "--shots", "0", "--lr", "0"], "--shots must be >= 1 (got 0); --lr must be > 0 (got 0.0)"),
    (["train", "--subset", "novel"], "--subset 'novel': choose all or base"),
    (["compare", "--shots", "1,x"], "--shots '1,x': expected comma-separated integers"),
    (["compare", "--methods", "coop,clipp"], "unknown method 'clipp'"),
    (["compare", "--protocol", "b2n"], "--protocol 'b2n': choose few-shot or base-to-novel"),
])
def test_a_bad_flag_is_one_line_before_torch(split: tuple[str, str], argv: list[str], said: str,
                                             before_torch: Any, tmp_path: Path) -> None:
    command, *flags = argv
    out = ["-o", str(tmp_path / "a.safetensors")] if command == "train" else []
    report, lines = before_torch(MEDICAL, ["biomedcoop", command, split[0], "--descriptions", split[1], *out,
                                           *flags, "--model", "tiny-hf"])
    assert report == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and said in lines[0], lines
    assert not (tmp_path / "a.safetensors").exists()
