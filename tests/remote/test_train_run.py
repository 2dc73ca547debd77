"""``clipsuite-remote train`` runs on one config, ``clipsuite.remote.train_run.RemoteRun``: one option per
field, its checks once and before torch, and ``--resume`` restoring every flag (comma lists included) from
what the run stored, refusing one typed again with another value by its flag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from clipsuite.cli.common import cli_errors
from clipsuite.cli.run_config import build_config, with_config_options
from clipsuite.core.errors import InputError
from clipsuite.core.run_config import cli_fields
from clipsuite.remote.train_run import RemoteRun, RemoteTrainConfig

runner = CliRunner()
REMOTE = "clipsuite.remote_app.main"
# what the command stored with a run before RemoteRun existed: a run started then must still resume
STORED_BEFORE = {"data", "model", "pretrained", "languages", "translations", "split", "eval_split", "distill_weight",
                 "teacher_decay", "teacher_decay_end", "teacher_temp", "teacher_temp_start", "teacher_temp_warmup",
                 "local_crops", "bands", "band_rule", "scale", "s2_offset", "stretch", "nodata", "epochs",
                 "max_steps", "batch_size", "lr", "weight_decay", "warmup", "schedule", "precision", "grad_accum",
                 "checkpoint_every", "seed"}

probe = typer.Typer()


@probe.command()
@cli_errors
@with_config_options(RemoteRun)
def show(ctx: typer.Context, values: dict[str, Any], run_dir: Path | None = None) -> None:
    """The command's parse -> config path without the training: the config it would train, as stored."""
    typer.echo(json.dumps(build_config(ctx, RemoteRun, values, resume_from=run_dir).to_options()))  # unwrapped


def _show(*args: object) -> Any:
    return runner.invoke(probe, [str(a) for a in args])


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    path = tmp_path / "captions.json"
    path.write_text('{"images": []}', encoding="utf-8")
    return path


def _stored_run(tmp_path: Path, data: Path, **options: Any) -> Path:
    """A run folder as the command leaves it: ``config.json`` with the options it was started with."""
    run = tmp_path / "run"
    run.mkdir()
    stored = {**RemoteRun(data=str(data)).to_options(), **options}
    (run / "config.json").write_text(json.dumps({"options": stored}), encoding="utf-8")
    return run


def test_the_run_stores_the_keys_the_command_stored_before() -> None:
    assert set(RemoteRun(data=".").to_options()) == STORED_BEFORE


def test_remote_train_has_one_option_per_run_field() -> None:
    from clipsuite.remote_app.main import app

    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    names = {p.name for p in command.params}
    fields = {f.name for f, _ in cli_fields(RemoteRun)}
    assert fields <= names and names - fields == {"output", "resume", "overwrite", "quiet"}  # where and how


def test_comma_lists_are_parsed_once_and_stored_as_values(data: Path) -> None:
    done = _show(data, "--languages", "en, zh,en", "--bands", "4,3,B02", "--stretch", "none", "--nodata", "-9999")
    assert done.exit_code == 0, done.output
    stored = json.loads(done.output)
    assert stored["languages"] == ["en", "zh"] and stored["bands"] == [4, 3, "B02"]
    assert stored["stretch"] is None and stored["nodata"] == -9999.0  # 'none' typed is no stretch, not the default
    assert json.loads(_show(data).output)["stretch"] == [2.0, 98.0]


def test_resume_restores_the_comma_list_flags_and_refuses_another_value_by_its_flag(tmp_path: Path,
                                                                                     data: Path) -> None:
    run = _stored_run(tmp_path, data, languages=["en", "zh"], bands=["B04", "B03", "B02"], stretch=None,
                      nodata=0.0, max_steps=2)
    resumed = _show("--run-dir", run, "--max-steps", "3")
    assert resumed.exit_code == 0, resumed.output
    stored = json.loads(resumed.output)
    assert stored["languages"] == ["en", "zh"] and stored["bands"] == ["B04", "B03", "B02"]
    assert stored["stretch"] is None and stored["nodata"] == 0.0 and stored["max_steps"] == 3  # adjustable
    assert _show("--run-dir", run, "--languages", "en,zh", "--bands", "B04,B03,B02").exit_code == 0  # agrees
    for flag, value in [("--languages", "en"), ("--bands", "4,3,2"), ("--stretch", "1,99")]:
        refused = _show("--run-dir", run, flag, value)
        lines = refused.output.strip().splitlines()
        assert refused.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), refused.output
        assert f"{flag} " in lines[0] and "--resume continues the run" in lines[0]


def test_resume_of_a_real_run_keeps_its_languages_and_refuses_others(tmp_path: Path) -> None:
    from clipsuite.remote import synthetic
    from clipsuite.remote_app.main import app

    captions, translations = synthetic.write_captions(tmp_path / "rsicd", per_class=2)
    run = tmp_path / "run"
    first = runner.invoke(app, ["train", str(captions), "-o", str(run), "--languages", "en,zh", "--translations",
                                str(translations), "--max-steps", "1", "--batch-size", "8", "-q"])
    assert first.exit_code == 0, first.output
    options = json.loads((run / "config.json").read_text(encoding="utf-8"))["options"]
    assert options["languages"] == ["en", "zh"] and options["stretch"] == [2.0, 98.0]
    refused = runner.invoke(app, ["train", "-o", str(run), "--resume", "--languages", "en,ko", "--max-steps", "2"])
    assert refused.exit_code == 2 and "--languages ['en', 'ko'] (the run has ['en', 'zh'])" in refused.output
    again = runner.invoke(app, ["train", "-o", str(run), "--resume", "--max-steps", "2", "-q"])
    assert again.exit_code == 0 and "resumed at step 1" in again.output, again.output


@pytest.mark.parametrize(("argv", "expected"), [
    (["--teacher-decay", "0.99", "--teacher-decay-end", "0.9"], "--teacher-decay 0.99 and --teacher-decay-end 0.9"),
    (["--teacher-temp-warmup", "-1"], "--teacher-temp-warmup must be >= 0 (got -1)"),
    (["--epochs", "0", "--warmup", "-1"], "--epochs must be >= 1 (got 0)"),
    (["--band-rule", "copy"], "--band-rule 'copy': choose repeat or average"),
    (["--stretch", "98,2"], "--stretch '98,2': need 0 <= LOW < HIGH <= 100"),
    (["--languages", " , "], "--languages ' , ': give at least one of the comma-separated languages"),
    (["--nodata", "lots"], "--nodata 'lots': not a number"),
], ids=["teacher-decay", "warmup-steps", "schedule", "band-rule", "stretch", "languages", "nodata"])
def test_a_bad_field_is_one_line_before_torch(before_torch: Any, tmp_path: Path, data: Path, argv: list[str],
                                              expected: str) -> None:
    report, lines = before_torch(REMOTE, ["train", str(data), "-o", str(tmp_path / "run"), *argv])
    assert report == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_the_method_settings_name_fields_in_the_library_and_flags_on_the_command_line() -> None:
    with pytest.raises(InputError) as caught:
        RemoteTrainConfig(teacher_temp_start=0, teacher_temp_warmup_steps=-1,
                          flags={"teacher_temp_warmup_steps": "--teacher-temp-warmup"})
    assert "teacher_temp_start must be > 0" in str(caught.value)
    assert "--teacher-temp-warmup must be >= 0" in caught.value.cli_message
    assert "--teacher-temp-start must be > 0" in caught.value.cli_message
