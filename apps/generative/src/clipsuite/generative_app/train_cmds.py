"""``clipsuite-generative train``: a DeltaSpace mapper (``delta``) or one LaDI-VTON stage (``tryon-stage``).

Parse -> config -> library call -> print: each run's options are the fields of its config in
``clipsuite.generative.train_runs`` (torch-free, checked there, stored with the run for ``--resume``); a
command adds only where it writes, where it trains and whether it resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clipsuite.cli.common import cli_errors, console
from clipsuite.cli.run_config import build_config, with_config_options
from clipsuite.cli.train_report import report_training
from clipsuite.generative.train_runs import DeltaRun, TryOnStageRun
from clipsuite.generative_app.common import DeviceOpt, load_clip

train_app = typer.Typer(help="Train a try-on stage or a DeltaSpace mapper.", no_args_is_help=True)

RunDirOpt = Annotated[Path | None, typer.Option(help="Checkpoints and metrics (default: beside --output).")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue the run with the flags it was started with (flags given again "
                                                "must agree; --steps may be raised).")]


def _run_folder(out: Path, run_dir: Path | None, resume: bool) -> Path:
    """The trained file and its run folder, checked before any work (clipsuite.core.outputs, run_folder)."""
    from clipsuite.core.outputs import check_output_file
    from clipsuite.core.run_folder import check_output_folder

    folder = run_dir or out.with_suffix(".run")
    check_output_folder(folder, resume, True, "--run-dir")  # a run of ours restarts, as before; a user's is refused
    check_output_file(out, "--output", (".safetensors",))
    return folder


def _path(value: str | None) -> Path | None:
    return Path(value) if value is not None else None


@train_app.command("delta")
@cli_errors
@with_config_options(DeltaRun)  # the run's options: the fields of clipsuite.generative.train_runs.DeltaRun
def train_delta(
    ctx: typer.Context,
    values: dict[str, Any],
    out: Annotated[Path, typer.Option("--output", "-o", "--out", help="Mapper file (.safetensors).")],
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Train a DeltaSpace mapper on the images of a folder (text-free)."""
    folder = _run_folder(out, run_dir, resume)
    run = build_config(ctx, DeltaRun, values, resume_from=folder if resume else None)
    from clipsuite.core.images import load_image
    from clipsuite.generative.train import fit_delta_mapper

    paths = run.image_paths()
    result = fit_delta_mapper(load_clip(run.clip, device), [load_image(p) for p in paths],
                              run.train_config(folder, device, resume=resume), out, hidden=run.hidden,
                              options=run.to_options())
    report_training(result, longer="--steps")
    console.print(f"mapper: {out} (pairs of {len(paths)} images)", soft_wrap=True)


@train_app.command("tryon-stage")
@cli_errors
@with_config_options(TryOnStageRun)  # the run's options: the fields of clipsuite.generative.train_runs.TryOnStageRun
def train_tryon_stage(
    ctx: typer.Context,
    values: dict[str, Any],
    out: Annotated[Path, typer.Option("--output", "-o", "--out", help="Stage file (.safetensors).")],
    run_dir: RunDirOpt = None,
    resume: ResumeOpt = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Train one LaDI-VTON stage on a VITON-HD or Dress Code folder; the stage file is what the next stage (and
    tryon) loads: tryon takes --warping and --inversion."""
    folder = _run_folder(out, run_dir, resume)
    run = build_config(ctx, TryOnStageRun, values, resume_from=folder if resume else None)
    assert run.data is not None  # TryOnStageRun refuses a run without
    from clipsuite.generative.dresscode import training_split
    from clipsuite.generative.stages import make_stage_task
    from clipsuite.generative.train import train_stage
    from clipsuite.generative.tryon import StageFiles

    layout = run.layout()
    dataset = training_split(run.data, layout, run.hw(), run.category)
    inputs = StageFiles(warping=_path(run.warping), inversion=_path(run.inversion))
    task = make_stage_task(run.stage, load_clip(run.clip, device), run.parts, run.hw(), inputs, run.category)
    result = train_stage(task, dataset, run.train_config(folder, device, resume=resume), out, run.to_options())
    report_training(result, longer="--steps")
    console.print(f"stage {run.stage}: {out} ({len(dataset)} {layout} samples)", soft_wrap=True)
