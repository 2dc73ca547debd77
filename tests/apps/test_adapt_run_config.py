"""``clipsuite adapt train`` runs on one config (``clipsuite.core.adapt.adapt_run.AdaptRun``): one option per
field, and every field's mistake answered in one line before torch is imported."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer

from clipsuite.core.adapt.adapt_run import AdaptRun
from clipsuite.core.errors import InputError
from clipsuite.core.run_config import cli_fields

CORE = "clipsuite.cli.main"


@pytest.mark.parametrize("module", ["clipsuite.core.adapt", "clipsuite.core.adapt.adapt_run",
                                    "clipsuite.core.adapt.results", "clipsuite.core.input_paths",
                                    "clipsuite.medical.vqa_run"])
def test_run_configs_and_results_stay_torch_free(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stderr


def test_adapt_train_has_one_option_per_run_field() -> None:
    from clipsuite.cli.main import app

    adapt = typer.main.get_command(app).commands["adapt"]  # type: ignore[attr-defined]
    names = {p.name for p in adapt.commands["train"].params}
    fields = {f.name for f, _ in cli_fields(AdaptRun)}
    assert fields <= names
    assert names - fields == {"output", "csv_path", "device"}  # where it writes and where it runs, not what


def test_comma_lists_are_parsed_once_and_all_waits_for_the_methods(tmp_path: Path) -> None:
    split = tmp_path / "split.json"
    split.write_text("{}")
    run = AdaptRun(split=str(split), methods=("zeroshot", "gda"), seeds=(1, 2))
    assert run.seed_list == [1, 2] and AdaptRun(split=str(split), seed=3).seed_list == [3]
    assert AdaptRun(split=str(split), methods=("all",)).methods == ("all",)  # resolved when the methods load
    with pytest.raises(InputError, match="holds one method and one seed"):
        run.check_single_file(tmp_path / "one.safetensors")


@pytest.mark.parametrize(("argv", "expected"), [
    (["--methods", "coop,nope"], "unknown method 'nope' (choose from"),
    (["--methods", " , "], "--methods ' , ': give at least one of the comma-separated methods"),
    (["--seeds", "1,x"], "--seeds '1,x': expected comma-separated integers, e.g. 1,2,3"),
    (["--shots", "0", "--epochs", "0"], "--shots must be >= 1 (got 0); --epochs must be >= 1 (got 0)"),
    (["--lr", "0"], "--lr must be > 0 (got 0.0)"),
    (["--subset", "half"], "--subset 'half': choose base, novel or all"),
    (["--class-token-position", "top"], "--class-token-position 'top': choose end, middle or front"),
    (["--descriptions", "{tmp}/gone.json"], "gone.json: file not found (--descriptions file)"),
    (["--image-root", "{tmp}/split.json"], "split.json: --image-root folder is a file, not a folder"),
    (["--methods", "coop,gda", "-o", "{tmp}/one.safetensors"], "a single .safetensors file holds one method and "
                                                                "one seed"),
], ids=["method", "no-method", "seeds", "shots-epochs", "lr", "subset", "token-position", "descriptions",
        "image-root", "single-file"])
def test_adapt_train_field_checks_answer_in_one_line_before_torch(
        tmp_path: Path, before_torch: Callable[..., tuple[dict[str, Any], list[str]]], argv: list[str],
        expected: str) -> None:
    (tmp_path / "split.json").write_text("{}")  # only its existence is checked before torch
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out")]
    report, lines = before_torch(CORE, ["adapt", "train", "--split", str(tmp_path / "split.json"), *argv])
    assert report == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert not (tmp_path / "out").exists() and not (tmp_path / "one.safetensors").exists()
