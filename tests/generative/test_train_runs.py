"""The generative run configs (``train_runs``, ``inference_runs``): each field is an option of its command, the
config owns the checks (one line, before torch), stores the keys the commands stored before, and ``--resume``
of each training command restores its flags and refuses another value typed again, naming the flag."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from clipsuite.core.errors import InputError
from clipsuite.core.run_config import cli_fields
from clipsuite.generative.inference_runs import EditRun, TryOnRun
from clipsuite.generative.train_runs import DeltaRun, TryOnStageRun
from clipsuite.generative_app.main import app

runner = CliRunner()
MAIN = "clipsuite.generative_app.main"
# what the commands stored with a run before the configs existed: a run started then must still resume
DELTA_KEYS = {"images", "steps", "batch_size", "lr", "hidden", "clip"}
STAGE_KEYS = {"stage", "data", "warping", "inversion", "category", "steps", "batch_size", "lr", "parts", "clip", "size"}


def _run(*args: str) -> Result:
    return runner.invoke(app, [*args], catch_exceptions=False)


def _error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())  # however the console wrapped the one line


def _params(*path: str) -> dict[str, set[str]]:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {p.name: {*p.opts, *p.secondary_opts} for p in command.params}


@pytest.mark.parametrize(("config", "command"), [(DeltaRun, ("train", "delta")),
                                                 (TryOnStageRun, ("train", "tryon-stage")),
                                                 (TryOnRun, ("tryon",)), (EditRun, ("edit",))])
def test_every_field_is_an_option_of_its_command(config: type, command: tuple[str, ...]) -> None:
    params = _params(*command)
    for f, meta in cli_fields(config):
        assert f.name in params, f.name
        flags = {flag for spec in meta.flags for flag in spec.split("/")}
        assert flags <= params[f.name], (f.name, params[f.name])


def test_the_stored_keys_are_those_of_before(vitonhd: Path) -> None:
    assert set(DeltaRun(images=str(vitonhd / "train" / "image")).to_options()) == DELTA_KEYS
    assert set(TryOnStageRun(stage="warping", data=str(vitonhd)).to_options()) == STAGE_KEYS
    assert TryOnStageRun(stage="warping", data=str(vitonhd), size="32x24").to_options()["size"] == "32x24"


def test_the_configs_own_their_checks(vitonhd: Path, tmp_path: Path) -> None:
    images = str(vitonhd / "train" / "image")
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.png").write_bytes(b"")
    cases = [
        (lambda: DeltaRun(), "give the IMAGES folder"),
        (lambda: DeltaRun(images=str(tmp_path / "one")), "needs at least 2 images (found 1)"),
        (lambda: DeltaRun(images=images, hidden=4), "--hidden must be >= 8 (got 4)"),
        (lambda: DeltaRun(images=images, steps=0), "--steps must be >= 1"),   # TrainConfig's rule, in our flag
        (lambda: DeltaRun(images=images, batch_size=0), "--batch-size must be >= 1"),
        (lambda: TryOnStageRun(stage="dance", data=str(vitonhd)), "unknown stage 'dance'"),
        (lambda: TryOnStageRun(stage="warping"), "give --data"),
        (lambda: TryOnStageRun(stage="warping", data=str(vitonhd), category="shoes"), "unknown category 'shoes'"),
        (lambda: TryOnStageRun(stage="warping", data=str(vitonhd), size="30x20"), "multiples of 8"),
        (lambda: TryOnStageRun(stage="warping", data=str(vitonhd), lr=0), "--lr must be > 0"),
        (lambda: TryOnStageRun(stage="warping", data=str(vitonhd), parts="sd3"), "--parts 'sd3': not a preset"),
    ]
    for build, expected in cases:
        with pytest.raises(InputError) as caught:
            build()
        assert expected in caught.value.cli_message, (expected, caught.value.cli_message)


def test_the_config_modules_import_no_torch() -> None:
    modules = ["train_runs", "inference_runs", "prechecks", "run_fields", "result_files", "names"]
    code = ("import sys\n" + "".join(f"import clipsuite.generative.{m}\n" for m in modules)
            + "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stderr


def test_a_bad_field_is_one_line_before_torch(vitonhd: Path, tmp_path: Path, before_torch: Any) -> None:
    images = str(vitonhd / "train" / "image")
    stage = ["train", "tryon-stage", "warping", "--data", str(vitonhd), "-o", str(tmp_path / "w.safetensors")]
    for argv, expected in [
        (["train", "delta", images, "-o", str(tmp_path / "d.safetensors"), "--hidden", "4"], "--hidden must be >= 8"),
        (["train", "delta", images, "-o", str(tmp_path / "d.safetensors"), "--steps", "0"], "--steps must be >= 1"),
        ([*stage, "--lr", "0"], "--lr must be > 0"),
        ([*stage, "--size", "30x20"], "--size '30x20': both sides must be multiples of 8"),
        ([*stage, "--category", "shoes"], "unknown category 'shoes'"),
    ]:
        answer, lines = before_torch(MAIN, argv)
        assert answer == {"code": 2, "torch": False, "open_clip": False}, lines
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert not (tmp_path / "d.safetensors").exists() and not (tmp_path / "w.safetensors").exists()


def test_train_delta_resume_restores_its_flags_and_refuses_other_values(vitonhd: Path, tmp_path: Path,
                                                                       before_torch: Any) -> None:
    from clipsuite.core.train.run_options import stored_options

    mapper, images = tmp_path / "delta.safetensors", vitonhd / "train" / "image"
    result = _run("train", "delta", str(images), "-o", str(mapper), "--steps", "2", "--batch-size", "8",
                  "--hidden", "32", "--lr", "0.002")
    assert result.exit_code == 0, result.output
    stored = stored_options(mapper.with_suffix(".run"))
    assert stored == {"images": str(images.resolve()), "steps": 2, "batch_size": 8, "lr": 0.002, "hidden": 32,
                      "clip": "tiny-transformers"}
    # only the raised step count: the folder, batch size, lr and width come back from the run
    result = _run("train", "delta", "-o", str(mapper), "--steps", "3", "--resume")
    assert result.exit_code == 0 and "resumed at step 2" in result.output, result.output
    again = stored_options(mapper.with_suffix(".run")) or {}
    assert {k: again.get(k) for k in DELTA_KEYS - {"steps"}} == {k: stored[k] for k in DELTA_KEYS - {"steps"}}
    for flag, value, has in (("--batch-size", "16", "8"), ("--lr", "0.01", "0.002"),
                             ("--clip", "other-clip", "tiny-transformers")):
        line = _error(_run("train", "delta", "-o", str(mapper), "--steps", "4", flag, value, "--resume"))
        assert f"{flag} {value} (the run has {has})" in line
    line = _error(_run("train", "delta", str(vitonhd / "test" / "image"), "-o", str(mapper), "--resume"))
    assert f"IMAGES {(vitonhd / 'test' / 'image').resolve()} (the run has {images.resolve()})" in line
    # the refusal is read from the run's stored options, before torch
    answer, lines = before_torch(MAIN, ["train", "delta", "-o", str(mapper), "--hidden", "64", "--resume"])
    assert answer == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and "--hidden 64 (the run has 32)" in lines[0]


def test_train_tryon_stage_resume_restores_its_flags_and_refuses_other_values(vitonhd: Path, tmp_path: Path) -> None:
    from clipsuite.core.checkpoints import read_config

    out = tmp_path / "warp.safetensors"
    result = _run("train", "tryon-stage", "warping", "--data", str(vitonhd), "-o", str(out), "--steps", "1",
                  "--batch-size", "2", "--size", "32x24", "--lr", "0.003")
    assert result.exit_code == 0, result.output
    result = _run("train", "tryon-stage", "warping", "-o", str(out), "--steps", "2", "--resume")
    assert result.exit_code == 0 and "resumed at step 1" in result.output, result.output
    assert (read_config(out) or {})["size"] == [32, 24]  # the stored --size, not the default 64x48
    for flag, value, has in (("--lr", "0.01", "0.003"), ("--batch-size", "3", "2"),
                             ("--category", "dresses", "upper_body")):
        line = _error(_run("train", "tryon-stage", "warping", "-o", str(out), "--steps", "3", flag, value,
                           "--resume"))
        assert f"{flag} {value} (the run has {has})" in line
    assert (read_config(out) or {})["step"] == 2  # the refused resumes wrote nothing


def test_tryon_and_edit_fields_are_checked_before_torch(vitonhd: Path, tmp_path: Path, before_torch: Any) -> None:
    t = vitonhd / "test"
    sample = ["tryon", "--person", str(t / "image" / "00006_00.jpg"), "--garment", str(t / "cloth" / "00006_00.jpg"),
              "-o", str(tmp_path / "r.png")]
    image = str(vitonhd / "train" / "image" / "00000_00.jpg")
    edit = ["edit", image, "a red shirt", "--neutral", "a shirt", "--mapper", image, "-o", str(tmp_path / "e.png")]
    for argv, expected in [
        (sample, "give --mask or --parse"),
        ([*sample, "--parse", str(t / "image-parse-v3" / "00006_00.png"), "--precision", "fp8"],
         "--precision 'fp8': choose fp32, fp16 or bf16"),
        ([*sample, "--parse", str(t / "image-parse-v3" / "00006_00.png"), "--steps", "0"], "--steps must be >= 1"),
        ([*edit, "--noise-strength", "0"], "--noise-strength 0.0: must be in (0, 1]"),
        ([*edit, "--guidance", "-1"], "--guidance must be >= 0"),
    ]:
        answer, lines = before_torch(MAIN, argv)
        assert answer == {"code": 2, "torch": False, "open_clip": False}, lines
        assert len(lines) == 1 and expected in lines[0], lines
    assert not list(tmp_path.iterdir())


def test_the_trainer_is_told_the_device_asked_for(tmp_path: Path, vitonhd: Path) -> None:
    # without it, a visible GPU would take a run asked for on the CPU (its CLIP on the CPU, its steps on the GPU)
    run = DeltaRun(images=str(vitonhd / "train" / "image"))
    assert run.train_config(tmp_path / "run", "cpu").device == "cpu"
    assert run.train_config(tmp_path / "run", "cuda:1").device == "cuda:1"
