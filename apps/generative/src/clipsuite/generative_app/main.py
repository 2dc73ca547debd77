"""``clipsuite-generative`` (also ``clipsuite generative``): tryon, edit, train, evaluate.

Thin: parse -> config -> library call -> print. ``tryon`` and ``edit`` take their options from the run configs
of ``clipsuite.generative.inference_runs``, the ``train`` commands (``train_cmds``) from ``train_runs``; each is
checked there, before torch is imported (one line, exit 2); the library writes the PNGs and the HTML grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clipsuite.cli.aliases import ClipsuiteGroup
from clipsuite.cli.common import cli_errors, console, err_console, fail, progress
from clipsuite.cli.run_config import build_config, with_config_options
from clipsuite.generative.inference_runs import EditRun, TryOnRun
from clipsuite.generative.prechecks import check_file
from clipsuite.generative.result_files import check_result_outputs
from clipsuite.generative_app.common import DeviceOpt, load_clip
from clipsuite.generative_app.train_cmds import train_app

if TYPE_CHECKING:
    from rich.progress import Progress

app = typer.Typer(name="generative", help="Virtual try-on (LaDI-VTON) and CLIP delta-space editing on diffusers; "
                  "try-on and editing metrics.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, cls=ClipsuiteGroup)
app.add_typer(train_app, name="train")  # train delta, train tryon-stage (train_cmds)


def _notes(notes: Sequence[str]) -> None:
    for note in notes:
        err_console.print(f"note: {note}", soft_wrap=True)


def _wrote(out: Path) -> None:
    console.print(f"wrote {out} and {out.with_suffix('.html')}")


def _steps_bar(bar: Progress, name: str, steps: int) -> Callable[[int, int], None]:
    """A bar for ``steps`` sampling steps and the callback that moves it."""
    task = bar.add_task(name, total=steps)
    return lambda i, n: bar.update(task, completed=i, total=n)


@app.command()
@cli_errors
@with_config_options(TryOnRun)  # the run's options: the fields of clipsuite.generative.inference_runs.TryOnRun
def tryon(
    ctx: typer.Context,
    values: dict[str, Any],
    out: Annotated[Path, typer.Option("--output", "-o", "--out",
                                      help="Output PNG; an HTML grid and the inputs go beside it.")],
    device: DeviceOpt = "cpu",
) -> None:
    """Dress PERSON in GARMENT: PNG result plus an HTML grid (person, garment, result)."""
    check_result_outputs(out)  # before any work: a user's file or folder is never written over
    run = build_config(ctx, TryOnRun, values)
    run.precheck()  # each file read once, the CLIP weights: one line before torch
    from clipsuite.generative.result_files import write_result
    from clipsuite.generative.tryon import build_run_model, load_run_sample, run_sampling

    loaded = load_run_sample(run)
    _notes(loaded.notes)
    model = build_run_model(run, load_clip(run.clip, device), device)
    with progress() as bar:
        result = model.run(loaded.sample, run.category, run_sampling(run), on_step=_steps_bar(bar, "try-on", run.steps))
    pictures = {"person": loaded.sample["image"], "garment": loaded.sample["cloth"],
                "warped garment": result["warped_cloth"][0]}
    write_result(out, pictures, result["image"][0], command="generative tryon", title="clipsuite try-on",
                 label=run.person.name, notes=loaded.notes)
    _wrote(out)


@app.command()
@cli_errors
@with_config_options(EditRun)  # the run's options: the fields of clipsuite.generative.inference_runs.EditRun
def edit(
    ctx: typer.Context,
    values: dict[str, Any],
    out: Annotated[Path, typer.Option("--output", "-o", "--out", help="Output PNG; an HTML grid goes beside it.")],
    device: DeviceOpt = "cpu",
) -> None:
    """Edit IMAGE toward TARGET (relative to --neutral) through the DeltaSpace mapper."""
    check_result_outputs(out)  # before any work: a user's file or folder is never written over
    run = build_config(ctx, EditRun, values)
    run.precheck()  # the CLIP weights: one line before torch
    from clipsuite.generative.delta_edit import edit_image
    from clipsuite.generative.result_files import write_result

    clip = load_clip(run.clip, device)
    with progress() as bar:
        pixels, edited = edit_image(run, clip, device, on_step=_steps_bar(bar, "edit", run.steps))
    write_result(out, {"input": pixels[0]}, edited[0], command="generative edit", result_column="edited",
                 title=f"clipsuite edit: '{run.neutral}' -> '{run.target}' (strength {run.strength})",
                 label=run.image.name)
    _wrote(out)


@app.command()
@cli_errors
def evaluate(
    real: Annotated[Path, typer.Option(help="Folder of real photos (the paired ground truth, same file names).")],
    generated: Annotated[Path, typer.Option(help="Folder of paired results.")],
    unpaired: Annotated[Path | None, typer.Option(help="Folder of unpaired results (swapped garments).")] = None,
    inception: Annotated[Path | None, typer.Option(help="torch-fidelity Inception weights file (default: the "
                                                        "torch hub cache).")] = None,
    out: Annotated[Path | None, typer.Option("--output", "-o", "--out", help="Write the metrics as JSON.")] = None,
) -> None:
    """SSIM, LPIPS, FID, KID (paired; FID/KID unpaired too). Metrics whose network is absent say so."""
    if out is not None:
        from clipsuite.core.outputs import check_output_file

        check_output_file(out, "--output")
    for folder in (real, generated, unpaired):
        if folder is not None and not folder.is_dir():
            fail(f"{folder}: folder not found")
    check_file(inception, "Inception weights file")

    from clipsuite.core.staging import atomic_write_json
    from clipsuite.generative.evaluate import read_image_folder, tryon_metrics

    reals, names = read_image_folder(real)
    paired, _ = read_image_folder(generated, names=names, like=reals)
    others = read_image_folder(unpaired, like=reals)[0] if unpaired is not None else None
    metrics = tryon_metrics(reals, paired, others, inception_weights=inception)
    for metric in metrics:
        value = f"{metric.value:.4f}" if metric.value is not None else f"unavailable: {metric.unavailable}"
        console.print(f"{metric.name:>14}  {value}", soft_wrap=True)
    if out is not None:
        atomic_write_json(out, {"images": len(names), "metrics": [m.as_dict() for m in metrics]})


def main() -> None:
    app()


if __name__ == "__main__":
    main()



