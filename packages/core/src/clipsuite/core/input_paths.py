"""A missing input path refused in one line, torch-free: a run config's ``__post_init__`` and the apps' early
checks (``clipsuite.cli.common`` re-exports it) say the same words, in milliseconds, before any model loads."""

from __future__ import annotations

import os
from pathlib import Path

from clipsuite.core.errors import InputError

__all__ = ["need"]


def need(path: str | os.PathLike[str] | None, what: str, kind: str = "any") -> None:
    """``path`` must exist (``kind``: any, file or dir); ``None`` (not given) passes. ``what`` names it, e.g.
    ``--descriptions file``."""
    if path is None:
        return
    found = Path(path)
    if not found.exists():
        raise InputError(f"{found}: {'folder' if kind == 'dir' else 'file'} not found ({what})")
    if kind == "file" and not found.is_file():
        raise InputError(f"{found}: {what} is a folder, not a file")
    if kind == "dir" and not found.is_dir():
        raise InputError(f"{found}: {what} is a file, not a folder")
