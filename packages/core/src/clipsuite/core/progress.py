"""One rule for every progress bar: drawn on a terminal, never into a redirected log or a pipe.

A bar redrawn with carriage returns turns a log file into thousands of lines of noise, so a bar is
shown only when it was not switched off and its stream is a terminal (tqdm's ``disable=None``
semantics). The core's tqdm bars come from ``progress_bar``; the CLI's rich bars ask
``progress_enabled`` for the same decision.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from tqdm.auto import tqdm


def progress_enabled(requested: bool = True, stream: IO[str] | None = None) -> bool:
    """True when a bar was asked for and ``stream`` (default: stderr) is an interactive terminal."""
    if not requested:
        return False
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(total: int | None = None, desc: str | None = None, enabled: bool = True,
                 **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr that ``progress_enabled`` decides about; ``kwargs`` go to tqdm."""
    stream = kwargs.pop("file", None) or sys.stderr
    return tqdm(total=total, desc=desc, file=stream, disable=not progress_enabled(enabled, stream), **kwargs)
