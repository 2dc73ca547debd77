"""``--resume`` that remembers, for every training command (the umbrella's and the domains'): the flags
a run was started with are stored with it (``clipsuite.core.train.run_options``); resuming takes the ones
not typed again from there and refuses one typed with another value, naming its flag."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import typer

NOT_GIVEN = ("DEFAULT", "DEFAULT_MAP")  # click's ParameterSource names (typer ships its own copy of click)


def given_options(ctx: typer.Context, names: Collection[str]) -> set[str]:
    """Which of ``names`` the user typed (or set through the environment) in the running command."""
    given = set()
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name not in NOT_GIVEN:
            given.add(name)
    return given


def _flags(ctx: typer.Context) -> dict[str, str]:
    """Parameter name -> the flag a user types (``ema`` -> ``--ema``, ``data`` -> ``DATA``)."""
    flags = {}
    for param in ctx.command.params:
        if param.name is None:
            continue
        longest = max(param.opts, key=len)
        flags[param.name] = longest if longest.startswith("-") else param.name.upper()
    return flags


def remembered(ctx: typer.Context, output: Path, options: Mapping[str, Any],
               adjustable: Collection[str] = ()) -> dict[str, Any]:
    """``options`` (every stored option of the command, by parameter name) completed from the run in
    ``output``; one ``InputError`` naming the flags that disagree with it."""
    from clipsuite.core.train.run_options import resume_options

    flags = _flags(ctx)
    # a value of None was not typed (a positional the command took for something else, as the run folder)
    given = {name for name in given_options(ctx, list(options)) if options[name] is not None}
    return resume_options(output, options, given, adjustable,
                          flag=lambda name: flags.get(name, "--" + name.replace("_", "-")))


def absolute_if_exists(path: str | Path | None) -> str | None:
    """A path stored with a run: absolute when it names something here, so a resume from another folder
    finds it; kept as typed otherwise (a shard pattern such as ``data/{000..009}.tar``)."""
    if path is None:
        return None
    return str(Path(path).resolve()) if Path(path).exists() else str(path)
