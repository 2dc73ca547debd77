"""``clipsuite adapt``: few-shot prompt learning and adapters (train, evaluate, compare, list)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clipsuite.cli.common import DeviceOpt, PretrainedOpt, cli_errors, console, err_console, need
from clipsuite.cli.run_config import build_config, with_config_options
from clipsuite.core.adapt.adapt_run import AdaptRun  # torch-free, as the whole package's start-up
from clipsuite.core.adapt.results import Row, summarize
from clipsuite.core.errors import InputError

SplitOpt = Annotated[Path, typer.Option("--split", help="Dassl split JSON, or a folder of class folders.")]
SubsetOpt = Annotated[str, typer.Option(help="Classes: all, base or novel (base-to-novel protocol; learned prompts "
                                             "transfer to the novel names).")]
ImageRootOpt = Annotated[Path | None, typer.Option(
    help="Folder the split's paths are relative to (default: the split file's folder).")]
CsvOpt = Annotated[Path | None, typer.Option("--csv", help="Where to write the table (train default: results.csv "
                                                           "in the --output folder, or the adapter's name with "
                                                           ".csv).")]


def _table(rows: list[Row]) -> Table:
    table = Table("method", "shots", "seed", "accuracy")
    for row in rows:
        table.add_row(row.method, str(row.shots), str(row.seed), f"{row.accuracy:.2f}")
    return table


def _summary_table(rows: list[Row]) -> Table:
    table = Table("method", "shots", "seeds", "mean accuracy", "std", title="mean over seeds")
    for entry in summarize(rows):
        table.add_row(entry.method, str(entry.shots), str(entry.seeds), f"{entry.accuracy:.2f}",
                      f"{entry.accuracy_sd:.2f}")
    return table


adapt_app = typer.Typer(help="Few-shot adaptation: CoOp, CoCoOp, KgCoOp, MaPLe, Tip-Adapter(-F), GDA, "
                             "linear probes, LLM descriptions.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(adapt_app, name="adapt")

@adapt_app.command("methods")
@cli_errors
def methods() -> None:
    """List the methods and their kind."""
    from clipsuite.core.adapt import installed_methods

    table = Table("method", "kind", "needs")
    for method in installed_methods().values():
        table.add_row(method.name, method.kind, "--descriptions" if method.needs_descriptions else "")
    console.print(table)

@adapt_app.command("train")
@cli_errors
@with_config_options(AdaptRun)  # the run's options: the fields of clipsuite.core.adapt.adapt_run
def train(
    ctx: typer.Context,
    values: dict[str, Any],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the adapters and results.csv; a "
                                         ".safetensors path saves a single method's adapter there.")
                      ] = Path("runs/adapt"),
    csv_path: CsvOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Train one or more methods on a K-shot draw and print (and save) method, shots, seed, accuracy."""
    from clipsuite.core.outputs import check_output_dir, check_output_file

    single_file = output.suffix == ".safetensors"
    (check_output_file if single_file else check_output_dir)(output, "--output")  # before any work
    if csv_path is not None:
        check_output_file(csv_path, "--csv")
    run = build_config(ctx, AdaptRun, values)  # every field checked here, before torch is imported
    if single_file:
        run.check_single_file(output)
    from clipsuite.core.adapt.runner import train_adapt_run
    from clipsuite.core.models import load_model

    names = run.method_names()
    data_split = run.load_split()
    clip = load_model(run.model, pretrained=run.pretrained, device=device)
    err_console.print(f"adapting {clip.name} on {len(data_split.class_names)} classes, {run.shots} shots, "
                      f"methods: {', '.join(names)}")
    rows, table_path = train_adapt_run(run, clip, data_split, names, output, csv_path, on_row=lambda row: (
        err_console.print(f"  {row.method} seed {row.seed}: {row.accuracy:.2f}")))
    console.print(_table(rows))
    if len(run.seed_list) > 1:
        console.print(_summary_table(rows))
    err_console.print(f"wrote {table_path}")

@adapt_app.command("evaluate")
@cli_errors
def evaluate(
    adapters: Annotated[list[Path], typer.Argument(help="Saved adapter files (.safetensors).")],
    split: SplitOpt,
    part: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    model: Annotated[str, typer.Option("--model", "-m", help="The model the adapters were trained with.")
                     ] = "tiny",
    pretrained: PretrainedOpt = None,
    subset: SubsetOpt = "all",
    image_root: ImageRootOpt = None,
    csv_path: CsvOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Score saved adapters on a split part and print method, shots, seed, accuracy."""
    if csv_path is not None:
        from clipsuite.core.outputs import check_output_file

        check_output_file(csv_path, "--csv")
    for path in adapters:  # paths first, before torch is imported
        if not path.is_file():
            raise InputError(f"{path}: adapter file not found")
    need(split, "--split")
    need(image_root, "--image-root folder", "dir")
    from clipsuite.core.adapt import evaluate_file, read_split, write_csv
    from clipsuite.core.models import load_model

    data_split = read_split(split, image_root, subset)
    clip = load_model(model, pretrained=pretrained, device=device)
    rows = [evaluate_file(path, clip, data_split, part) for path in adapters]
    console.print(_table(rows))
    if csv_path is not None:
        write_csv(csv_path, rows)
        err_console.print(f"wrote {csv_path}")
