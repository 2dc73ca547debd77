"""Comma-separated flag values (``--classes a,b``, ``--seeds 1,2,3``): the one parser of every command and of
every run config's ``parse`` hook. Torch-free, so a typo answers before anything heavy is imported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from clipsuite.core.errors import InputError

T = TypeVar("T")


@overload
def parse_list(text: str, flag: str, convert: None = None, kind: str = ..., example: str = ...) -> list[str]: ...
@overload
def parse_list(text: str, flag: str, convert: Callable[[str], T], kind: str = ..., example: str = ...) -> list[T]: ...
def parse_list(text: str, flag: str, convert: Callable[[str], Any] | None = None, kind: str = "values",
               example: str = "a,b,c") -> list[Any]:
    """A comma-separated option (``--classes a,b``, ``--seeds 1,2,3``): the one parser of every command.
    Blank items are dropped; an empty list, or an item ``convert`` refuses, is one line naming ``flag``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InputError(f"{flag} '{text}': give at least one of the comma-separated {kind}, e.g. {example}")
    try:
        return [convert(item) for item in items] if convert is not None else items
    except ValueError:
        raise InputError(f"{flag} '{text}': expected comma-separated {kind}, e.g. {example}") from None
