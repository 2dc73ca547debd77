"""``clipsuite embed``: stream images through a model into embedding shards (one per process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from clipsuite.cli.common import ModelOpt, PretrainedOpt, cli_errors, console, err_console, need


def model_spec_for_record(spec: str) -> str:
    """Record a local model folder/file by absolute path so a later query finds it from anywhere."""
    path = Path(spec.removeprefix("local-dir:"))
    return str(path.resolve()) if path.exists() else spec


def register(app: typer.Typer) -> None:
    @app.command("embed")
    @cli_errors
    def embed(
        source: Annotated[Path, typer.Argument(help="A folder of images, an image, a CSV/TSV with a path column, "
                                                    "or a .txt list of paths.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the shards (created).")],
        model: ModelOpt = "tiny",
        pretrained: PretrainedOpt = None,
        batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 64,
        workers: Annotated[int, typer.Option(min=0, help="DataLoader worker processes decoding images.")] = 2,
        path_column: Annotated[str | None, typer.Option(
            help="CSV column holding image paths (default: filepath, path, image ...).")] = None,
        on_error: Annotated[str, typer.Option(
            help="skip: list undecodable images in skipped.json; fail: stop.")] = "skip",
        dtype: Annotated[str, typer.Option(help="Stored precision: float32 or float16.")] = "float32",
        device: Annotated[str | None, typer.Option(
            help="cpu, cuda ... (default: this process's accelerator).")] = None,
        progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    ) -> None:
        """Embed images into DIR/shard-*.safetensors (+ metadata JSONL).

        On several GPUs or machines each process embeds its share and writes its own shard:
        `accelerate launch --num_processes 4 -m clipsuite.cli.main embed ...` (or torchrun -m). Build the
        index from the whole folder afterwards: `clipsuite index build DIR -o INDEX`."""
        from clipsuite.core.outputs import check_output_dir
        from clipsuite.core.shard_files import is_shard_entry

        check_output_dir(output, "--output", also_ours=is_shard_entry)  # a user's folder: refused before any work
        need(source, "input")  # before torch is imported
        from clipsuite.core.weights_precheck import check_weights

        check_weights(model, pretrained)  # an uncached model offline: from the hub cache, before torch
        import torch

        from clipsuite.core import load_model
        from clipsuite.core.embed import EmbedConfig, embed_images, read_inputs

        config = EmbedConfig(batch_size=batch_size, num_workers=workers, on_error=on_error, dtype=dtype,
                             path_column=path_column, progress=progress)
        read_inputs(source, path_column)  # bad input fails before a model is built or a folder made
        torch.manual_seed(0)  # random-init specs (tiny, untrained names) come out the same in every process
        clip = load_model(model, pretrained=pretrained, device=device or _process_device())
        result = embed_images(clip, source, output, config, model_spec=model_spec_for_record(model))
        if result.process_index != 0:
            return
        if result.num_processes > 1 and (output / "embeddings.json").is_file():
            total = json.loads((output / "embeddings.json").read_text())["count"]
            console.print(f"embedded {total} images into {result.num_processes} shards in {output}")
        else:
            console.print(f"embedded {result.count} images into {result.shard}")
        if result.skipped:
            err_console.print(f"[yellow]skipped {len(result.skipped)} undecodable image(s)[/], listed in "
                              f"{output / 'skipped.json'}; first: {result.skipped[0]['reason']}")


def _process_device() -> str | None:
    """Under accelerate launch / torchrun each process owns one GPU (LOCAL_RANK)."""
    import os

    import torch

    if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return None
