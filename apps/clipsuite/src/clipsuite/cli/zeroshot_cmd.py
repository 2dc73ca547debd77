"""``clipsuite zeroshot``: classify images by class names x templates, descriptions, or a learned adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    parse_list,
)
from clipsuite.core.errors import InputError


def _class_names(classes: str | None, classes_file: Path | None) -> list[str] | None:
    if classes_file is not None:
        if not classes_file.is_file():
            raise InputError(f"{classes_file}: file not found")
        names = [line.strip() for line in classes_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not names:
            raise InputError(f"{classes_file}: no class names in this file")
        return names
    if classes:
        return parse_list(classes, "--classes", kind="class names", example="cat,dog")
    return None


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
        # arguments and paths first: a typo answers before torch is imported
        if output is not None:
            from clipsuite.core.outputs import check_output_file

            check_output_file(output, "--output")
        need_some(images, "image")
        for path, flag in ((classes_file, "--classes-file"), (descriptions, "--descriptions"), (adapter, "--adapter")):
            need(path, f"{flag} file", "file")
        if adapter is None and not (classes or classes_file):
            raise InputError("give --classes, --classes-file or --adapter")
        from clipsuite.core.weights_precheck import check_weights

        check_weights(model, pretrained)  # an uncached model offline: from the hub cache, before torch
        from clipsuite.core import load_model
        from clipsuite.core.images import expand_image_inputs, load_image
        from clipsuite.core.prompts import load_descriptions
        from clipsuite.core.skipping import SkipLog, check_on_error, keep_readable
        from clipsuite.core.tabular import write_table
        from clipsuite.core.zeroshot import check_class_count, classify_images

        log = SkipLog(check_on_error(on_error))
        paths = expand_image_inputs(images)
        names = _class_names(classes, classes_file)
        if adapter is None:
            if names is None:
                raise InputError("give --classes, --classes-file or --adapter")
            check_class_count(names)
        # decode everything up front: an unreadable file is skipped (or fails) before any output
        paths = keep_readable(paths, load_image, log, "images")
        clip = load_model(model, pretrained=pretrained, device=device)
        sentences = load_descriptions(descriptions, names) if descriptions and names else None
        names, probs = classify_images(clip, paths, names, templates, sentences,
                                       str(adapter) if adapter is not None else None, batch_size)
        top = probs.topk(min(top_k, len(names)), dim=-1)
        k = top.values.shape[1]
        table = Table("image", *[f"#{i + 1}" for i in range(k)])
        rows: list[dict[str, object]] = []
        for path, values, indices in zip(paths, top.values.tolist(), top.indices.tolist()):
            table.add_row(str(path), *[f"{names[i]} ({p:.2f})" for p, i in zip(values, indices)])
            rows.append({"path": str(path), **{f"class_{j + 1}": names[i] for j, i in enumerate(indices)},
                         **{f"prob_{j + 1}": f"{p:.6f}" for j, p in enumerate(values)}})
        # listed, with empty predictions, so the CSV accounts for every input
        rows += [{"path": skipped.path, "error": skipped.reason} for skipped in log.skipped]
        console.print(table)
        if log.skipped:
            err_console.print(f"[yellow]{log.summary('image')}[/]", soft_wrap=True)
        if output is not None:
            columns = ["path", *[f"{kind}_{i + 1}" for i in range(k) for kind in ("class", "prob")], "error"]
            write_table(output, rows, columns)
            console.print(f"predictions written to {output}")
