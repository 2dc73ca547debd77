"""``clipsuite pretrain-synthetic``: build (or find) the offline pretrained backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipsuite.cli.common import cli_errors, console

CacheOpt = Annotated[Path | None, typer.Option(help="Cache folder (default: $CLIPSUITE_CACHE/pretrained-synthetic "
                                                    "or ~/.cache/clipsuite/pretrained-synthetic).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Train again even when a cached copy exists.")]


def register(app: typer.Typer) -> None:
    @app.command("pretrain-synthetic")
    @cli_errors
    def pretrain_synthetic(cache: CacheOpt = None, force: ForceOpt = False) -> None:
        """Pretrain the small offline CLIP on the synthetic caption corpus (shapes, defects, lesions)
        and cache it; prints the folder to pass as --model. The demo uses it when it is cached."""
        from clipsuite.core.pretrain import ensure_pretrained, find_cached, remove_cached

        if force:
            remove_cached(cache_dir=cache)
        found = find_cached(cache_dir=cache)
        if found is None:
            console.print("training the backbone (a few minutes on a CPU) ...")
        path = ensure_pretrained(cache_dir=cache, progress=True)
        console.print(f"{'cached' if found else 'built'}: {path}")
