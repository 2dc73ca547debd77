"""How a run config's fields describe themselves to a command line, without the library knowing any CLI.

A library's run config is a dataclass whose fields carry ``metadata=cli(help, *flags)``; the CLIs build
their options from these (``clipsuite.cli.run_config``: names, help, defaults), so a field, its check in
``__post_init__`` and its flag are written once. Torch-free.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CliField", "absolute_paths", "below", "cli", "cli_fields", "flag_of", "parse_typed", "schedule_problems"]


@dataclass(frozen=True)
class CliField:
    help: str
    flags: tuple[str, ...] = ()  # default: --field-name
    argument: bool = False       # a positional argument instead of an option
    path: bool = False           # a path: stored absolute when it exists, so a resume from elsewhere finds it
    # typed as text, held as a value: ``parse("en,fr") -> ("en", "fr")``; raises InputError naming the flag
    parse: Callable[[str], Any] | None = None


def cli(help: str, *flags: str, argument: bool = False, path: bool = False,
        parse: Callable[[str], Any] | None = None) -> dict[str, CliField]:
    """Field metadata: ``field(default=..., metadata=cli("Help.", "--name", "-n"))``; ``parse`` for a field
    whose command-line text is not its value (a comma list, a range)."""
    return {"cli": CliField(help, tuple(flags), argument, path, parse)}


def cli_fields(config_class: type) -> list[tuple[dataclasses.Field[Any], CliField]]:
    """The fields of ``config_class`` that are command-line options, in declaration order."""
    return [(f, f.metadata["cli"]) for f in dataclasses.fields(config_class) if "cli" in f.metadata]


def absolute_paths(config_class: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each path field made absolute when it names something here (a shard pattern such
    as ``data/{000..009}.tar`` or a URL stays as typed)."""
    out = dict(values)
    for f, meta in cli_fields(config_class):
        value = out.get(f.name)
        if meta.path and value is not None and Path(os.fspath(value)).exists():
            out[f.name] = str(Path(os.fspath(value)).resolve())
    return out


def parse_typed(config_class: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each ``parse`` field's typed text turned into its value (``None``, not typed, stays)."""
    out = dict(values)
    for f, meta in cli_fields(config_class):
        if meta.parse is not None and isinstance(out.get(f.name), str):
            out[f.name] = meta.parse(out[f.name])
    return out


def as_text(value: Any) -> str:
    """A field's default as a user would type it (a list as ``a,b``)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def flag_of(config_class: type, name: str) -> str:
    """The flag a user types for field ``name`` (its first long flag, or ``--field-name``)."""
    meta = {f.name: m for f, m in cli_fields(config_class)}.get(name)
    longs = [flag for flag in (meta.flags if meta else ()) if flag.startswith("--")]
    return longs[0].split("/")[0] if longs else "--" + name.replace("_", "-")


def below(config: Any, minimum: float, *names: str, strict: bool = False) -> list[str]:
    """A problem line per field under ``minimum`` (``strict``: at or under it), named by its flag; ``None``
    (not given) passes: ``below(run, 1, "epochs", "hidden")`` -> ``["--hidden must be >= 1 (got 0)"]``."""
    problems = []
    for name in names:
        value = getattr(config, name)
        if value is not None and (value <= minimum if strict else value < minimum):
            problems.append(f"{flag_of(type(config), name)} must be {'>' if strict else '>='} {minimum:g} "
                            f"(got {value})")
    return problems


def schedule_problems(train_config: Callable[[], object]) -> list[str]:
    """TrainConfig's rules (epochs, batch, lr, precision ...) for a run config, as problem lines in the command's
    flags: ``schedule_problems(lambda: self.train_config(Path(".")))``."""
    from clipsuite.core.errors import InputError

    try:
        train_config()
    except InputError as error:
        return [error.cli_message]
    return []
