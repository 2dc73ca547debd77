"""The one rule for where a command may write: a new folder, or one clipsuite wrote, or nothing at all.

An output folder is either new (absent or empty), or one this project wrote: it carries our manifest
(``.clipsuite-output.json``, listing every file and folder the command put there) and holds nothing
that the manifest does not list. Anything else may be the user's, so it is refused in one line before
any work, and never written into or deleted. Replacing our own earlier output removes only what its
manifest lists (``clipsuite.core.staging.staged_folder`` stages the new folder and swaps it in).

Torch-free and quick: a CLI calls ``check_output_dir`` / ``check_output_file`` while it checks its
arguments, so a wrong ``--output`` answers before a model is loaded. Training runs, which grow in
place and resume, keep their own marker rule (``clipsuite.core.run_folder``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clipsuite.core.errors import InputError

__all__ = ["MANIFEST_NAME", "check_output_dir", "check_output_file", "foreign_entries", "foreign_folder_error",
           "listed_entries", "remove_listed", "walk_entries", "write_manifest"]

logger = logging.getLogger("clipsuite.core.outputs")
MANIFEST_NAME = ".clipsuite-output.json"
MANIFEST_KIND = "clipsuite-output"
SHOWN = 3  # names quoted in a refusal; the rest are counted


def walk_entries(folder: Path) -> list[str]:
    """Every file and folder under ``folder`` as a relative POSIX path (links are entries, not followed)."""
    found: list[str] = []
    for root, dirs, files in os.walk(folder):
        base = Path(root).relative_to(folder)
        found += [(base / name).as_posix() for name in dirs + files]
    return found


def listed_entries(folder: str | os.PathLike[str]) -> set[str] | None:
    """The entries our manifest in ``folder`` lists, or None when there is no readable manifest of ours."""
    path = Path(folder) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND or not isinstance(data.get("entries"), list):
        return None
    return {entry for entry in data["entries"] if isinstance(entry, str)}


def foreign_entries(folder: str | os.PathLike[str], also_ours: Callable[[str], bool] | None = None) -> list[str]:
    """What ``folder`` holds that clipsuite did not write there (all of it when it has no manifest of ours).

    ``also_ours``: entries a writer of several processes knows as its own before the manifest is written
    (``embed``'s shards). Top-level names only, folders with a trailing ``/``: enough to find them."""
    folder = Path(folder)
    listed = listed_entries(folder) or set()
    foreign: set[str] = set()
    for entry in walk_entries(folder):
        if entry == MANIFEST_NAME or entry in listed or (also_ours is not None and also_ours(entry)):
            continue
        top = entry.split("/", 1)[0]
        foreign.add(top + "/" if (folder / top).is_dir() and not (folder / top).is_symlink() else top)
    return sorted(foreign)


def foreign_folder_error(path: Path, flag: str = "--output", foreign: list[str] | None = None) -> InputError:
    """The one refusal of a folder that holds what clipsuite did not write (``foreign``: default, all of it)."""
    foreign = foreign_entries(path) if foreign is None else foreign
    shown = ", ".join(foreign[:SHOWN]) + (f" and {len(foreign) - SHOWN} more" if len(foreign) > SHOWN else "")
    head = f"{path} holds files this command did not write ({shown})"
    return InputError(f"{head}; choose another output folder or remove them",
                      cli=f"{head}; choose another {flag} or remove them")


def check_output_dir(path: str | os.PathLike[str], flag: str = "--output",
                     also_ours: Callable[[str], bool] | None = None) -> Path:
    """Refuse, in one line, an output folder that is not new and not ours; return it as a Path.

    ``flag``: the command's option for the folder, named in the CLI's advice; ``also_ours``: as in
    ``foreign_entries``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a folder", cli=f"{path}: exists and is not a folder; "
                                                                    f"give {flag} a folder")
    if path.is_dir():
        foreign = foreign_entries(path, also_ours)
        if foreign:
            raise foreign_folder_error(path, flag, foreign)
    return path


def check_output_file(path: str | os.PathLike[str], flag: str = "--output", suffixes: tuple[str, ...] = ()) -> Path:
    """Refuse an output file path that is a folder, whose parent is a file, or (``suffixes`` given) whose
    name does not end in one of them. An existing file at the path is the one the user named: it is
    replaced whole (staged, renamed over it), never appended to."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file", cli=f"{path}: is a folder; give {flag} a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        choices = " or ".join(suffixes) if len(suffixes) < 3 else f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"
        raise InputError(f"{path}: the output must end in {choices}", cli=f"{path}: {flag} must end in {choices}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{parent}: is a file, not a folder (the folder of {path})")
            break
    return path


def write_manifest(folder: str | os.PathLike[str], command: str, entries: set[str] | None = None) -> Path:
    """List ``entries`` (default: everything now in ``folder``, a finished staging folder) in our manifest
    there. Written under a temporary name and renamed, so a reader never sees half of it."""
    folder = Path(folder)
    listed = entries if entries is not None else set(walk_entries(folder))
    record: dict[str, Any] = {"kind": MANIFEST_KIND, "version": 1, "command": command,
                              "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "entries": sorted(listed - {MANIFEST_NAME})}
    path = folder / MANIFEST_NAME
    temp = folder / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(record, indent=1) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    return path


def remove_listed(folder: str | os.PathLike[str], entries: set[str]) -> list[str]:
    """Delete from ``folder`` only the listed entries and the manifest, then the folder if it is empty.

    Returns what was left (something appeared there that the manifest does not list): it is kept."""
    folder = Path(folder)
    for entry in sorted(entries, key=lambda e: e.count("/"), reverse=True):  # files and sub-folders first
        path = folder / entry
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        elif path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty: an unlisted file inside keeps it
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    left = walk_entries(folder)
    if left:
        logger.warning("%s: kept, it holds %d entries the manifest did not list", folder, len(left))
        return left
    folder.rmdir()
    return []
