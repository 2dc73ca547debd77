"""Errors that carry one clear, user-facing line.

The CLIs print ``str(error)`` and exit non-zero; a library user catches ``ClipsuiteError``.
Each message names the file or thing at fault and what is wrong with it.
"""

from __future__ import annotations


class ClipsuiteError(Exception):
    """Base class: the message is one line meant for the person running the tool.

    ``str(error)`` speaks to a library user (``load_model(..., pretrained=...)``); ``cli`` may carry the
    same advice in command-line words (``--pretrained FILE``), which the CLIs print instead.
    """

    def __init__(self, message: str = "", cli: str | None = None) -> None:
        super().__init__(message)
        self.cli = cli

    @property
    def cli_message(self) -> str:
        """The line a command-line user should read."""
        return self.cli or str(self)


class InputError(ClipsuiteError):
    """A file or argument given by the user cannot be used (corrupt, missing, wrong shape)."""


class ModelError(ClipsuiteError):
    """A model spec is unknown, or a checkpoint does not fit the architecture."""


class WeightsUnavailableError(ModelError):
    """Pretrained weights were asked for but cannot be had (no network, not cached)."""


def first_line(error: BaseException | str, limit: int = 160, empty: str | None = None) -> str:
    """An exception's message as one line for a one-line refusal: its first non-blank line, cut at
    ``limit`` characters; ``empty`` (default: the exception's class name) when it says nothing."""
    text = str(error).strip()
    if not text:
        return empty if empty is not None else (type(error).__name__ if isinstance(error, BaseException) else "")
    return text.splitlines()[0][:limit]
