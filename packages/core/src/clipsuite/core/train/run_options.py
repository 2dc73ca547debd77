"""A run that remembers how it was started.

A command that trains hands the ``Trainer`` its options (``{name: value}``, JSON-able: the data path, the
model, the learning rate ...); a fresh run stores them in ``config.json`` under ``"options"``. Resuming,
``resume_options`` fills every option the user did not give again from there and refuses one given with
another value, naming it, so ``--resume`` alone continues the run exactly as it was started.

Two kinds of options are looser: *adjustable* ones are stored but may be given anew on resume (the run
length, to train on: ``epochs``, ``max_steps``); *transient* ones are never stored (a progress bar, worker
processes): the caller simply leaves them out of ``options``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from clipsuite.core.errors import InputError
from clipsuite.core.json_files import read_json  # not checkpoints: reading stored options imports no torch

CONFIG_FILE = "config.json"
OPTIONS_KEY = "options"


def as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (paths as strings, tuples as lists), for comparison."""
    return json.loads(json.dumps(value, default=str))


def stored_options(output_dir: str | Path) -> dict[str, Any] | None:
    """The options a run in ``output_dir`` was started with, or ``None`` (no run, or one from before
    options were stored)."""
    path = Path(output_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    data = read_json(path)
    options = data.get(OPTIONS_KEY) if isinstance(data, dict) else None
    return dict(options) if isinstance(options, dict) else None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def resume_options(output_dir: str | Path, options: Mapping[str, Any], given: Collection[str],
                   adjustable: Collection[str] = (), flag: Callable[[str], str] = _flag) -> dict[str, Any]:
    """``options`` completed from the run stored in ``output_dir``.

    ``given`` names the options the user set explicitly (the others hold defaults). Each one not given
    takes its stored value; each one given must equal the stored value unless it is ``adjustable``,
    or this is one ``InputError`` listing every difference by its flag (``flag(name)``). Options the
    run did not store (added to the command later) keep the value passed. A folder with no stored
    options returns ``options`` unchanged: the Trainer still refuses settings that would break resume.
    """
    stored = stored_options(output_dir)
    if stored is None:
        return dict(options)
    differences = []
    for name, value in options.items():
        if name in stored and name in given and name not in adjustable and as_json(value) != stored[name]:
            differences.append(f"{flag(name)} {as_json(value)} (the run has {stored[name]})")
    if differences:
        raise InputError(f"{output_dir}: --resume continues the run with its own settings, but "
                         f"{'; '.join(differences)}; drop {'that flag' if len(differences) == 1 else 'those flags'}"
                         ", or start afresh with --overwrite or in another folder")
    return {name: (value if name in given or name not in stored else stored[name]) for name, value in options.items()}
