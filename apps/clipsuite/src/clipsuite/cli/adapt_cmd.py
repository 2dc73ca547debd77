"""``clipsuite adapt``: few-shot prompt learning and adapters (train, evaluate, compare, list)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from clipsuite.cli.common import DeviceOpt, ModelOpt, PretrainedOpt, cli_errors, console, err_console, need, parse_list
from clipsuite.core.errors import InputError

if TYPE_CHECKING:  # torch-free at start-up: these modules import torch
    from clipsuite.core.adapt.fewshot_data import Split
    from clipsuite.core.adapt.runner import Row

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


def _seeds(seed: int, seeds: str | None) -> list[int]:
    if not seeds:
        return [seed]
    return parse_list(seeds, "--seeds", int, "integers", "1,2,3")


def _split(split: Path, image_root: Path | None, subset: str) -> Split:
    from clipsuite.core.adapt import base_novel, load_class_folders, load_split

    loaded = load_class_folders(split) if split.is_dir() else load_split(split, image_root)
    return base_novel(loaded, subset)


def register(app: typer.Typer) -> None:
    adapt = typer.Typer(help="Few-shot adaptation: CoOp, CoCoOp, KgCoOp, MaPLe, Tip-Adapter(-F), GDA, "
                             "linear probes, LLM descriptions.", no_args_is_help=True)
    app.add_typer(adapt, name="adapt")

    @adapt.command("methods")
    @cli_errors
    def methods() -> None:
        """List the methods and their kind."""
        from clipsuite.core.adapt import installed_methods

        table = Table("method", "kind", "needs")
        for method in installed_methods().values():
            table.add_row(method.name, method.kind, "--descriptions" if method.needs_descriptions else "")
        console.print(table)

    @adapt.command("train")
    @cli_errors
    def train(
        split: SplitOpt,
        method: Annotated[str, typer.Option("--method", "--methods", help="A method, a comma-separated list, or "
                                            "'all' (one row per method); `clipsuite adapt methods` lists them.")
                          ] = "coop",
        shots: Annotated[int, typer.Option(help="Training images per class (validation uses min(K, 4)).")] = 16,
        seed: Annotated[int, typer.Option(help="Seed of the K-shot draw and of the initialisation.")] = 1,
        seeds: Annotated[str | None, typer.Option(help="Several seeds, comma-separated (overrides --seed).")] = None,
        model: ModelOpt = "tiny",
        pretrained: PretrainedOpt = None,
        output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the adapters and results.csv; a "
                                             ".safetensors path saves a single method's adapter there.")
                          ] = Path("runs/adapt"),
        csv_path: CsvOpt = None,
        epochs: Annotated[int | None, typer.Option(
            help="Training epochs (default: the method's, from its paper).")] = None,
        lr: Annotated[float | None, typer.Option(help="Learning rate (default: the method's).")] = None,
        batch_size: Annotated[int | None, typer.Option(help="Batch size (default: the method's).")] = None,
        n_ctx: Annotated[int | None, typer.Option(help="Context vectors for random init (prompt learners).")] = None,
        ctx_init: Annotated[str | None, typer.Option(
            help="Initial context phrase (default 'a photo of a'; '' = random).")] = None,
        csc: Annotated[bool, typer.Option(help="Class-specific contexts (CoOp).")] = False,
        class_token_position: Annotated[str, typer.Option(help="end, middle or front (CoOp).")] = "end",
        views: Annotated[int, typer.Option(
            help="Augmented views of the training images cached for Tip-Adapter/GDA.")] = 10,
        augment: Annotated[bool, typer.Option(help="Train prompt learners on the augmented views.")] = False,
        descriptions: Annotated[Path | None, typer.Option(
            help="CuPL / descriptor JSON (class -> sentences).")] = None,
        subset: SubsetOpt = "all",
        image_root: ImageRootOpt = None,
        cache_dir: Annotated[Path | None, typer.Option(help="Keep encoded image features here between runs.")] = None,
        device: DeviceOpt = None,
    ) -> None:
        """Train one or more methods on a K-shot draw and print (and save) method, shots, seed, accuracy."""
        from clipsuite.core.outputs import check_output_dir, check_output_file

        single_file = output.suffix == ".safetensors"
        (check_output_file if single_file else check_output_dir)(output, "--output")  # before any work
        if csv_path is not None:
            check_output_file(csv_path, "--csv")
        need(split, "--split")  # paths first, before torch is imported
        need(descriptions, "--descriptions file", "file")
        need(image_root, "--image-root folder", "dir")
        from clipsuite.core.adapt import MethodOptions, prepare, resolve_methods, run, train_one, write_csv
        from clipsuite.core.models import load_model

        names = resolve_methods(method, have_descriptions=descriptions is not None)
        seed_list = _seeds(seed, seeds)
        if single_file and (len(names) > 1 or len(seed_list) > 1):
            raise InputError(f"--output {output}: a single .safetensors file holds one method and one seed; "
                             "give a folder for several")
        data_split = _split(split, image_root, subset)
        options = MethodOptions(epochs=epochs, lr=lr, batch_size=batch_size, n_ctx=n_ctx, ctx_init=ctx_init, csc=csc,
                                class_token_position=class_token_position, augment=augment,
                                descriptions=str(descriptions) if descriptions else None, progress=False)
        clip = load_model(model, pretrained=pretrained, device=device)
        err_console.print(f"adapting {clip.name} on {len(data_split.class_names)} classes, {shots} shots, "
                          f"methods: {', '.join(names)}")

        def report(row: Row) -> None:
            err_console.print(f"  {row.method} seed {row.seed}: {row.accuracy:.2f}")

        if single_file:  # one method, one seed, saved under the asked name; its table beside it, same stem
            data = prepare(clip, data_split, shots, seed_list[0], views, cache_dir)
            _, row = train_one(names[0], data, options, output)
            rows = [row]
            table_path = write_csv(csv_path or output.with_suffix(".csv"), rows)
        else:  # the adapters and results.csv staged, then swapped in: a folder of ours, or a new one
            from clipsuite.core.staging import staged_folder

            with staged_folder(output, command="adapt train", flag="--output") as stage:
                rows = run(clip, data_split, names, shots, seed_list, options, views=views, output_dir=stage,
                           cache_dir=cache_dir, on_row=report)
                if csv_path is None:
                    write_csv(stage / "results.csv", rows)
            table_path = write_csv(csv_path, rows) if csv_path is not None else output / "results.csv"
        console.print(_table(rows))
        if len(seed_list) > 1:
            from clipsuite.core.adapt.runner import summarize

            summary = Table("method", "shots", "seeds", "mean accuracy", "std", title="mean over seeds")
            for entry in summarize(rows):
                summary.add_row(str(entry["method"]), str(entry["shots"]), str(entry["seeds"]),
                                f"{entry['mean']:.2f}", f"{entry['std']:.2f}")
            console.print(summary)
        err_console.print(f"wrote {table_path}")

    @adapt.command("evaluate")
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
        from clipsuite.core.adapt import evaluate_file, write_csv
        from clipsuite.core.models import load_model
        data_split = _split(split, image_root, subset)
        clip = load_model(model, pretrained=pretrained, device=device)
        rows = [evaluate_file(path, clip, data_split, part) for path in adapters]
        console.print(_table(rows))
        if csv_path is not None:
            write_csv(csv_path, rows)
            err_console.print(f"wrote {csv_path}")
