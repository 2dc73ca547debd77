"""How a run config's fields describe themselves to a command line, without the library knowing any CLI.

A library's run config is a dataclass whose fields carry ``metadata=cli(help, *flags)``; the CLIs build
their options from these (``clipsuite.cli.run_config``: names, help, defaults), so a field, its check in
``__post_init__`` and its flag are written once. Torch-free.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CliField", "absolute_paths", "cli", "cli_fields"]


@dataclass(frozen=True)
class CliField:
    help: str
    flags: tuple[str, ...] = ()  # default: --field-name
    argument: bool = False       # a positional argument instead of an option
    path: bool = False           # a path: stored absolute when it exists, so a resume from elsewhere finds it


def cli(help: str, *flags: str, argument: bool = False, path: bool = False) -> dict[str, CliField]:
    """Field metadata: ``field(default=..., metadata=cli("Help.", "--name", "-n"))``."""
    return {"cli": CliField(help, tuple(flags), argument, path)}


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
