"""One vocabulary: every output is ``-o/--output``; no option a user typed before 2026-12-07 is gone.

``cli_options_2026-12-07.json`` is every command's option names on that day (``--out``, ``--json`` ...):
each must still be accepted (the old output names as aliases of ``--output``).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from clipsuite.cli.main import app

BEFORE = json.loads((Path(__file__).parent / "cli_options_2026-12-07.json").read_text(encoding="utf-8"))
OLD_OUTPUT_NAMES = {"--out", "--json"}


def _options() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def walk(command: object, path: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            found[" ".join(path)] = {o for p in command.params for o in p.opts + p.secondary_opts  # type: ignore[attr-defined]
                                     if o.startswith("-")}

    walk(typer.main.get_command(app), ())
    return found


def test_no_option_of_before_is_gone() -> None:
    now = _options()
    missing = {command: sorted(set(names) - now.get(command, set())) for command, names in BEFORE.items()}
    assert {command: names for command, names in missing.items() if names} == {}


def test_every_primary_output_is_dash_o_output() -> None:
    now = _options()
    for command, names in now.items():
        if names & OLD_OUTPUT_NAMES:
            assert {"-o", "--output"} <= names, command
