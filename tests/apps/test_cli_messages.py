"""Messages a person can act on: the flag that fixes it, help rendered literally, names never cut, the
umbrella help counting the installed domains, and `train` refusing a folder that is not a run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipsuite.cli.main import APPS, app
from clipsuite.core.errors import InputError
from clipsuite.core.presets import presets
from clipsuite.core.run_folder import check_output_folder

runner = CliRunner()


def _cli(*argv: str, columns: int) -> str:
    env = dict(os.environ, COLUMNS=str(columns), TERM="dumb")
    done = subprocess.run([sys.executable, "-m", "clipsuite.cli.main", *argv], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("columns", [60, 200])
def test_models_never_cuts_what_a_user_types(columns: int) -> None:
    shown = _cli("models", columns=columns)
    for preset in presets().values():
        assert preset.name in shown
        assert preset.spec in shown, f"{preset.spec} cut at {columns} columns"
        if preset.pretrained:
            assert preset.pretrained in shown, f"{preset.pretrained} cut at {columns} columns"


def test_help_renders_literally_and_counts_the_installed_domains() -> None:
    medical = runner.invoke(app, ["medical", "biomedcoop", "train", "--help"], env={"COLUMNS": "200"})
    assert medical.exit_code == 0 and "[[path, label, class], ...]" in medical.output, medical.output
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    names = APPS.names()
    assert f"one core, {len(names)} domains installed ({', '.join(names)})" in " ".join(top.output.split())
    assert "five domains" not in top.output


def test_train_refuses_a_folder_that_is_not_a_run_and_names_the_flags(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("filepath,title\n")
    other = tmp_path / "holiday-photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"x")
    for flags in ([], ["--overwrite"], ["--resume"]):
        result = runner.invoke(app, ["train", str(pairs), "-o", str(other), *flags])
        assert result.exit_code == 2, result.output
        assert "holds files this command did not write (keep.jpg); choose another --output" in result.output
    assert (other / "keep.jpg").read_bytes() == b"x"
    run = tmp_path / "run"
    run.mkdir()
    (run / "trainer_state.json").write_text("{}")
    result = runner.invoke(app, ["train", str(pairs), "-o", str(run)])
    assert result.exit_code == 2
    assert "add --resume to continue it, --overwrite to replace it" in " ".join(result.output.split())
    with pytest.raises(InputError, match="pass resume=True to continue it, overwrite=True to replace it"):
        check_output_folder(run, resume=False, overwrite=False)
    check_output_folder(run, resume=True, overwrite=False)
    check_output_folder(tmp_path / "new", resume=False, overwrite=False)
    started = tmp_path / "started"  # killed before its first checkpoint: still its own run
    started.mkdir()
    (started / "config.json").write_text('{"train": {}}')
    check_output_folder(started, resume=True, overwrite=False)


def test_run_folder_refusals_name_the_commands_own_flag(tmp_path: Path) -> None:
    """anomaly's run folder is --run-dir, medical's --out: the advice names the flag the user typed."""
    from clipsuite.anomaly_app.main import app as anomaly_app

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(InputError) as caught:
        check_output_folder(busy, resume=False, overwrite=False, flag="--out")
    assert caught.value.cli_message.endswith("choose another --out or remove them")
    data = tmp_path / "data"
    (data / "good").mkdir(parents=True)
    result = runner.invoke(anomaly_app, ["train", str(data), "--out", str(tmp_path / "w.safetensors"),
                                         "--run-dir", str(busy), "--model", "tiny"])
    assert result.exit_code == 2
    assert " ".join(result.output.split()).endswith("choose another --run-dir or remove them"), result.output


def test_offline_hub_model_in_the_cli_speaks_cli_words(monkeypatch, tmp_path: Path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    result = runner.invoke(app, ["zeroshot", str(image), "--classes", "a,b", "--model", "hf-hub:org/no-such-model"],
                           env={"COLUMNS": "80"})
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert text.count("error:") == 1 and "org/no-such-model" in text
    assert "--pretrained FILE or --model local-dir:DIR" in text and text.endswith("to try the command offline")
    assert "load_model(" not in text
