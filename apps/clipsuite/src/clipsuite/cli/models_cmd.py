"""``clipsuite models``: the presets every installed package declares."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from clipsuite.cli.common import cli_errors, console

DomainOpt = Annotated[str | None, typer.Option(help="Only presets of this domain (offline, general, medical ...).")]


def register(app: typer.Typer) -> None:
    @app.command("models")
    @cli_errors
    def models(domain: DomainOpt = None) -> None:
        """List the named models (presets) with their source and what to know about them."""
        from clipsuite.core.presets import presets

        shown = [p for p in presets().values() if not domain or p.domain == domain]
        table = Table(show_lines=True)
        # the name is what a user types: it keeps its full width; the other columns fold or wrap, never cut
        table.add_column("name", no_wrap=True, min_width=max((len(p.name) for p in shown), default=4))
        table.add_column("domain", no_wrap=True)
        table.add_column("spec (pretrained)", overflow="fold", ratio=1)
        table.add_column("source: notes", overflow="fold", ratio=1)
        for preset in shown:
            spec = preset.spec + (f"\n({preset.pretrained})" if preset.pretrained else "")
            table.add_row(preset.name, preset.domain, spec, f"{preset.source}: {preset.notes}")
        console.print(table)
