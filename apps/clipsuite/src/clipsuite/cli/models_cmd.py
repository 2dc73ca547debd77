"""``clipsuite models``: the presets every installed package declares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from clipsuite.cli.common import cli_errors, console

if TYPE_CHECKING:
    from clipsuite.core.presets import Preset

DomainOpt = Annotated[str | None, typer.Option(help="Only presets of this domain (offline, general, medical ...).")]


def register(app: typer.Typer) -> None:
    @app.command("models")
    @cli_errors
    def models(domain: DomainOpt = None) -> None:
        """List the named models (presets) with their source and what to know about them."""
        from clipsuite.core.presets import presets

        shown = [p for p in presets().values() if not domain or p.domain == domain]
        # what a user types (the name, the spec, the pretrained tag or file) is never cut or folded: a table
        # when it fits the terminal, otherwise one block per preset whose long words may run past the edge
        typed = [(p.name, p.spec + (f" ({p.pretrained})" if p.pretrained else "")) for p in shown]
        name_width = max((len(n) for n, _ in typed), default=4)
        spec_width = max((len(s) for _, s in typed), default=4)
        if console.width >= name_width + spec_width + len("offline") + NOTES_MIN_WIDTH + 13:
            console.print(_table(shown, name_width, spec_width))
            return
        for preset, (name, spec) in zip(shown, typed):
            console.print(f"[bold]{name}[/] ({preset.domain}, loader {preset.loader})", soft_wrap=True)
            console.print(f"  spec: {spec}", soft_wrap=True, markup=False)
            console.print(f"  {preset.source}: {preset.notes}", markup=False)


NOTES_MIN_WIDTH = 30


def _table(shown: list[Preset], name_width: int, spec_width: int) -> Table:
    table = Table(show_lines=True)
    table.add_column("name", no_wrap=True, min_width=name_width)
    table.add_column("domain", no_wrap=True)
    table.add_column("spec (pretrained)", no_wrap=True, min_width=min(spec_width, 60))
    table.add_column("source: notes", overflow="fold", ratio=1)
    for preset in shown:
        spec = preset.spec + (f"\n({preset.pretrained})" if preset.pretrained else "")
        table.add_row(preset.name, preset.domain, spec, f"{preset.source}: {preset.notes}")
    return table
