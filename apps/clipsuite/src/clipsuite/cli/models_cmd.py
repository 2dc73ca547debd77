"""``clipsuite models``: the preset registry and built-in configs."""

from __future__ import annotations

import typer
from rich.table import Table

from clipsuite.cli.common import cli_errors, console
from clipsuite.core.presets import PRESETS


def register(app: typer.Typer) -> None:
    @app.command("models")
    @cli_errors
    def models(domain: str = typer.Option(None, help="Only presets of this domain.")) -> None:
        """List the named models (presets) with their source and what to know about them."""
        table = Table("name", "spec", "pretrained", "domain", "source", "notes", show_lines=False)
        for preset in PRESETS.values():
            if domain and preset.domain != domain:
                continue
            table.add_row(preset.name, preset.spec, preset.pretrained or "-", preset.domain, preset.source,
                          preset.notes)
        console.print(table)
