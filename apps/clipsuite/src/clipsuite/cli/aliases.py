"""Old option names kept for one release, accepted but not shown: ``--out`` and ``--json`` became
``-o/--output`` on 2026-12-07. typer hides whole options, not single names, so every clipsuite command tree
is built by ``ClipsuiteGroup``, which moves those names out of ``--help`` and keeps them in the parser."""

from __future__ import annotations

from typing import Any, cast

from typer.core import TyperGroup, TyperOption

RETIRING_NAMES = frozenset({"--out", "--json"})  # aliases of --output since 2026-12-07; drop after one release
NEW_NAME = "--output"


class _OptionWithHiddenNames(TyperOption):
    """An option whose ``hidden_opts`` parse like its own names but are left out of ``--help``."""

    hidden_opts: list[str]

    def add_to_parser(self, parser: Any, ctx: Any) -> None:
        shown = self.opts
        self.opts = [*shown, *self.hidden_opts]  # the parser learns every name; help reads opts afterwards
        try:
            super().add_to_parser(parser, ctx)
        finally:
            self.opts = shown


def hide_retiring_names(command: Any) -> None:
    """In ``command`` and every command under it: an ``--output`` option's retiring names become hidden."""
    for sub in getattr(command, "commands", {}).values():
        hide_retiring_names(sub)
    for param in getattr(command, "params", []):
        if not isinstance(param, TyperOption) or NEW_NAME not in param.opts:
            continue
        retiring = [name for name in param.opts if name in RETIRING_NAMES]
        if retiring:
            hidden = [*getattr(param, "hidden_opts", []), *retiring]
            param.__class__ = _OptionWithHiddenNames  # same fields; only add_to_parser differs
            cast(_OptionWithHiddenNames, param).hidden_opts = hidden
            param.opts = [name for name in param.opts if name not in RETIRING_NAMES]


class ClipsuiteGroup(TyperGroup):
    """The group class of every clipsuite app (``typer.Typer(cls=ClipsuiteGroup)``): typer builds the whole
    tree before it makes the group, so hiding here reaches every command, nested ones and mounted apps too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        hide_retiring_names(self)
