"""Staged writes: every output of the suite appears complete or not at all.

A file is written under a hidden temporary name in its own folder (``.name.<random>.tmp``), flushed
and fsynced, then renamed over the target: a rename within one folder is atomic, so a reader (or a
run killed at any moment) sees the old file or the new one, never half of one. On an error the
temporary is removed and the target is left as it was.

A folder is built as a hidden temporary sibling, its files fsynced, then renamed into place (an
existing folder is renamed aside first and deleted after, so the swap itself is two renames). With
``merge=True`` the finished entries are instead moved one by one into a folder that also holds other
things (a report written next to the data it describes).

Temporaries are created with the ordinary permissions (umask applies), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from clipsuite.core.outputs import check_output_dir, listed_entries, remove_listed, walk_entries, write_manifest

__all__ = ["StagedFile", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "staged_folder",
           "staged_path"]


def _sibling(target: Path, suffix: str) -> Path:
    """A hidden name next to ``target`` that no one else uses (random part, checked by the caller)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{suffix}")


def _fsync_path(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable. Windows cannot open folders: there it is skipped."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagedFile:
    """A file written under a temporary sibling name and renamed over ``target`` by ``commit``.

    Use it as a context manager (``with StagedFile(path, "w") as out: out.write(...)``): a clean
    exit commits, an exception aborts. Streaming writers keep the object and call ``commit`` or
    ``abort`` themselves; ``handle`` is the open temporary file (it may be seeked and rewritten).
    """

    def __init__(self, target: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> None:
        if not mode.startswith("w"):
            raise ValueError(f"StagedFile writes a new file: mode must start with 'w', got '{mode}'")
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        exclusive = "x" + mode[1:]  # never reuse an existing temporary of someone else's
        while True:
            self.temp = _sibling(self.target, ".tmp")
            try:
                self.handle: IO[Any] = open(self.temp, exclusive, encoding=None if "b" in mode else encoding)
                break
            except FileExistsError:
                continue

    def commit(self) -> Path:
        """Flush, fsync and rename over the target; on any failure remove the temporary."""
        try:
            if self.handle.closed:  # a path-based writer wrote (and maybe replaced) the file itself
                _fsync_path(self.temp)
            else:
                self.handle.flush()
                os.fsync(self.handle.fileno())
                self.handle.close()
            os.replace(self.temp, self.target)
            _fsync_folder(self.target.parent)
        except BaseException:
            self.abort()
            raise
        return self.target

    def abort(self) -> None:
        """Close and delete the temporary; the target is untouched."""
        if not self.handle.closed:
            self.handle.close()
        self.temp.unlink(missing_ok=True)

    def __enter__(self) -> IO[Any]:
        return self.handle

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


@contextmanager
def staged_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """For writers that take a file name (safetensors, faiss, PIL): yields the temporary path to write
    to; on a clean exit it is fsynced and renamed over ``target``, on an error removed."""
    staged = StagedFile(target, "wb")
    staged.handle.close()
    try:
        yield staged.temp
    except BaseException:
        staged.abort()
        raise
    staged.commit()


def _write(path: str | os.PathLike[str], data: str | bytes) -> None:
    with StagedFile(path, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text as a staged file (bytes as given: no newline translation)."""
    _write(path, text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    _write(path, data)


def atomic_write_json(path: str | os.PathLike[str], data: Any, **dumps: Any) -> None:
    """JSON (indent 2 unless ``dumps`` says otherwise) plus a final newline, as a staged file."""
    _write(path, json.dumps(data, **{"indent": 2, **dumps}) + "\n")


# ---- folders -----------------------------------------------------------------------------------------
def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync_path(Path(root) / name)
        _fsync_folder(Path(root))


def _rename_in(new: Path, target: Path) -> Path:
    """Rename the folder ``target`` aside and ``new`` into its place (the old one back if that fails);
    returns where the old one now is, for the caller to empty."""
    old = _sibling(target, ".old")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    return old


def _swap(new: Path, target: Path) -> None:
    """Put ``new`` (a file or folder) where ``target`` is, inside a folder of ours (``merge``). An existing
    folder replaced by a folder is renamed aside first and deleted after."""
    if target.is_dir() and not target.is_symlink():
        if new.is_dir():
            shutil.rmtree(_rename_in(new, target), ignore_errors=True)
            return
        shutil.rmtree(target)
    elif new.is_dir() and (target.exists() or target.is_symlink()):
        target.unlink()  # a folder cannot be renamed over a file
    os.replace(new, target)


def _replace_ours(new: Path, target: Path, flag: str) -> None:
    """Put the finished folder ``new`` where ``target`` is. An existing ``target`` must still be new or
    ours (checked again: files may have appeared since the command began); it is renamed aside, ``new``
    renamed in, and then only what the old manifest listed is deleted (anything else is kept there)."""
    if not target.exists():
        os.replace(new, target)
        return
    check_output_dir(target, flag)
    listed = listed_entries(target) or set()
    remove_listed(_rename_in(new, target), listed)


def _merge_ours(new: Path, target: Path, command: str) -> None:
    """Move each finished entry into ``target`` (ours or new), replacing our entries of the same name, and
    list the union in the manifest: the folder stays ours for the next command."""
    listed = listed_entries(target) or set()
    added = set(walk_entries(new))
    target.mkdir(exist_ok=True)
    for entry in sorted(new.iterdir()):
        _swap(entry, target / entry.name)
    new.rmdir()
    write_manifest(target, command, listed | added)


@contextmanager
def staged_folder(target: str | os.PathLike[str], merge: bool = False, durable: bool = True,
                  command: str = "clipsuite", flag: str = "--output") -> Iterator[Path]:
    """Yield a temporary sibling folder to build ``target`` in; on a clean exit swap it into place.

    ``target`` must be new (absent or empty) or a folder clipsuite wrote (``clipsuite.core.outputs``):
    anything else is refused before the block runs, and files that appear there meanwhile are never
    deleted. The finished folder carries our manifest (naming ``command``), so the next run may replace it.
    ``merge``: move each top-level entry into ``target``, replacing our entries of the same name and
    keeping our others (each entry is swapped atomically, not the set); otherwise the whole folder
    replaces ``target``, and of the old one only what its manifest listed is deleted. An error removes
    the temporary folder and leaves ``target`` as it was. ``durable``: fsync every file before the
    rename (off only for scratch outputs). ``flag``: the CLI option named in a refusal.
    """
    target = Path(target)
    check_output_dir(target, flag)
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        temp = _sibling(target, ".tmp")
        try:
            temp.mkdir()
            break
        except FileExistsError:
            continue
    try:
        yield temp
        if merge:
            check_output_dir(target, flag)
        else:
            write_manifest(temp, command)
        if durable:
            _fsync_tree(temp)
        if merge:
            _merge_ours(temp, target, command)
        else:
            _replace_ours(temp, target, flag)
        _fsync_folder(target.parent)
        if merge:
            _fsync_folder(target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
