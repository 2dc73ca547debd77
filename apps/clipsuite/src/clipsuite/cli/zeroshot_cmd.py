"""``clipsuite zeroshot``: classify images by class names x templates, descriptions, or a learned adapter."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from clipsuite.cli.common import (
    DeviceOpt,
    ModelOpt,
    PretrainedOpt,
    cli_errors,
    console,
    err_console,
    need,
    need_some,
)
from clipsuite.core.errors import InputError

if TYPE_CHECKING:
    import torch

    from clipsuite.core.skipping import SkipLog


def _checked_inputs(images: list[Path], classes: str | None, classes_file: Path | None, descriptions: Path | None,
                    adapter: Path | None, output: Path | None, model: str, pretrained: str | None) -> list[str] | None:
    """Arguments and paths first: a typo answers before torch is imported. The class names, or None (adapter)."""
    from clipsuite.core.class_names import read_class_names
    from clipsuite.core.outputs import check_output_file
    from clipsuite.core.weights_precheck import check_weights

    if output is not None:
        check_output_file(output, "--output")
    need_some(images, "image")
    for path, flag in ((classes_file, "--classes-file"), (descriptions, "--descriptions"), (adapter, "--adapter")):
        need(path, f"{flag} file", "file")
    names = read_class_names(classes, classes_file)
    if adapter is None and names is None:
        raise InputError("give --classes, --classes-file or --adapter")
    check_weights(model, pretrained)  # an uncached model offline: from the hub cache, before torch
    return names


def _show(paths: Sequence[Path], names: Sequence[str], probs: torch.Tensor, top_k: int, log: SkipLog,
          output: Path | None) -> None:
    """The top classes per image as a table (and a CSV that accounts for every input, skipped ones too)."""
    from clipsuite.core.tabular import write_table

    top = probs.topk(min(top_k, len(names)), dim=-1)
    k = top.values.shape[1]
    table = Table("image", *[f"#{i + 1}" for i in range(k)])
    rows: list[dict[str, object]] = []
    for path, values, indices in zip(paths, top.values.tolist(), top.indices.tolist()):
        table.add_row(str(path), *[f"{names[i]} ({p:.2f})" for p, i in zip(values, indices)])
        rows.append({"path": str(path), **{f"class_{j + 1}": names[i] for j, i in enumerate(indices)},
                     **{f"prob_{j + 1}": f"{p:.6f}" for j, p in enumerate(values)}})
    rows += [{"path": skipped.path, "error": skipped.reason} for skipped in log.skipped]
    console.print(table)
    if log.skipped:
        err_console.print(f"[yellow]{log.summary('image')}[/]", soft_wrap=True)
    if output is not None:
        columns = ["path", *[f"{kind}_{i + 1}" for i in range(k) for kind in ("class", "prob")], "error"]
        write_table(output, rows, columns)
        console.print(f"predictions written to {output}")


def register(app: typer.Typer) -> None:
    @app.command("zeroshot")
    @cli_errors
    def zeroshot(
        images: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
        model: ModelOpt = "tiny",
        pretrained: PretrainedOpt = None,
        classes: Annotated[str | None, typer.Option(help="Comma-separated class names.")] = None,
        classes_file: Annotated[Path | None, typer.Option(help="A text file, one class name per line.")] = None,
        templates: Annotated[str, typer.Option(
            help="photo | simple | openai | a file | a template with {}.")] = "photo",
        descriptions: Annotated[Path | None, typer.Option(
            help="CuPL-style JSON: class -> sentences (replaces templates).")] = None,
        adapter: Annotated[Path | None, typer.Option(
            help="A learned prompt/adapter file from `clipsuite adapt train`.")] = None,
        top_k: Annotated[int, typer.Option(min=1, help="How many classes to show per image.")] = 1,
        batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 64,
        device: DeviceOpt = None,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Write predictions as CSV here.")] = None,
        on_error: Annotated[str, typer.Option(
            help="skip: leave out unreadable images (listed in the CSV's error column); fail: stop.")] = "skip",
    ) -> None:
        """Zero-shot (or adapter) classification of images; prints a table, optionally writes CSV."""
        names = _checked_inputs(images, classes, classes_file, descriptions, adapter, output, model, pretrained)
        from clipsuite.core import load_model
        from clipsuite.core.images import expand_image_inputs, load_image
        from clipsuite.core.prompts import load_descriptions
        from clipsuite.core.skipping import SkipLog, check_on_error, keep_readable
        from clipsuite.core.zeroshot import classify_images

        log = SkipLog(check_on_error(on_error))
        # decode everything up front: an unreadable file is skipped (or fails) before any output
        paths = keep_readable(expand_image_inputs(images), load_image, log, "images")
        clip = load_model(model, pretrained=pretrained, device=device)
        sentences = load_descriptions(descriptions, names) if descriptions and names else None
        names, probs = classify_images(clip, paths, names, templates, sentences,
                                       str(adapter) if adapter is not None else None, batch_size)
        _show(paths, names, probs, top_k, log, output)
