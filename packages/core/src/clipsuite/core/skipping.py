"""What a command that reads many files does with one it cannot read: ``skip`` it or ``fail``.

One bad photo in a folder of ten thousand should not stop a run, and it must not vanish silently
either: every command that reads a folder takes ``on_error`` ("skip", the default, or "fail"),
collects the files it skipped in a ``SkipLog`` with the reason, lists them in its output and says
how many there were. ``fail`` re-raises the first error, as a single-file command always does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar, cast

from clipsuite.core.errors import ClipsuiteError, InputError

OnError = Literal["skip", "fail"]
ON_ERROR_CHOICES: tuple[str, ...] = ("skip", "fail")
T = TypeVar("T", bound="str | os.PathLike[str]")  # a path: SkipLog names it in its messages
R = TypeVar("R")


def check_on_error(value: str) -> OnError:
    """``value`` if it is a known policy, else one clear error naming the choices."""
    if value not in ON_ERROR_CHOICES:
        raise InputError(f"on_error must be 'skip' or 'fail', got '{value}'")
    return cast(OnError, value)


@dataclass(frozen=True)
class Skipped:
    """A file left out of a run and why (the reader's one-line message, which names the file)."""

    path: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class SkipLog:
    """Collects unreadable files under one policy: ``skip`` records them, ``fail`` raises."""

    on_error: OnError = "skip"
    skipped: list[Skipped] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_on_error(self.on_error)

    def record(self, path: str | os.PathLike[str], reason: str) -> None:
        """A failure already turned into a message (e.g. by a DataLoader worker)."""
        if self.on_error == "fail":
            raise InputError(reason)
        self.skipped.append(Skipped(str(path), reason))

    def attempt(self, path: str | os.PathLike[str], read: Callable[[], R]) -> R | None:
        """``read()``, or None when it raises a clipsuite error and the policy is ``skip``.

        Only the library's own errors are caught: readers turn a corrupt file into an ``InputError``
        naming it, and anything else is a bug that should surface.
        """
        try:
            return read()
        except ClipsuiteError as error:
            if self.on_error == "fail":
                raise
            self.skipped.append(Skipped(str(path), str(error)))
            return None

    def __len__(self) -> int:
        return len(self.skipped)

    def summary(self, noun: str = "file") -> str:
        """``skipped 2 unreadable files: a.png: corrupt image (...); ...`` (empty when none)."""
        if not self.skipped:
            return ""
        plural = noun if len(self.skipped) == 1 else f"{noun}s"
        return f"skipped {len(self.skipped)} unreadable {plural}: " + "; ".join(s.reason for s in self.skipped)


def read_each(paths: Sequence[T], read: Callable[[T], R], log: SkipLog,
              what: str = "files") -> tuple[list[T], list[R]]:
    """The paths that ``read`` accepted and what it returned for them; the others go to ``log``.

    Nothing readable at all is an error even when skipping: an empty result would look like success.
    """
    kept: list[T] = []
    values: list[R] = []
    for path in paths:
        value = log.attempt(path, lambda: read(path))  # noqa: B023 - called at once, inside the loop
        if value is not None:
            kept.append(path)
            values.append(value)
    _check_some_kept(len(paths), len(kept), log, what)
    return kept, values


def keep_readable(paths: Sequence[T], read: Callable[[T], object], log: SkipLog, what: str = "files") -> list[T]:
    """The paths that ``read`` accepts; what it returns is dropped at once, so a check of a large
    folder (decoding every image) holds one file in memory at a time."""
    kept = [path for path in paths
            if log.attempt(path, lambda: read(path) is not None) is not None]  # noqa: B023 - called at once
    _check_some_kept(len(paths), len(kept), log, what)
    return kept


def _check_some_kept(total: int, kept: int, log: SkipLog, what: str) -> None:
    if total and not kept:
        raise InputError(f"none of the {total} {what} could be read (first: {log.skipped[0].reason})")
