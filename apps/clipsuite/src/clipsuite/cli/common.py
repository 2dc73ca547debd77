"""What every clipsuite command shares: the console, one-line errors, progress bars, and the options
several commands take (module-level ``Annotated`` types, the one style of every clipsuite CLI)."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO, TypeVar, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from clipsuite.core.comma_lists import parse_list  # noqa: F401  (the apps' one list parser, from the core)
from clipsuite.core.errors import ClipsuiteError, InputError
from clipsuite.core.input_paths import need  # noqa: F401  (the apps' missing-path rule, from the core)

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model spec: a preset (`clipsuite models`), open_clip "
                                                             "name, folder, .safetensors file or hf-hub:org/repo.")]
PretrainedOpt = Annotated[str | None, typer.Option(help="Pretrained tag or weight file for --model.")]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda when available).")]


class _NoteHandler(logging.Handler):
    """The libraries' warnings (``clipsuite.*`` loggers) as one yellow line each, said once: a note about
    how the run went (random weights, fill found, a skipped file), not a log record with a source line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.said: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.said:
            self.said.add(message)
            err_console.print(f"[yellow]note:[/] {escape(message)}", soft_wrap=True)


def _route_library_notes() -> None:
    library = logging.getLogger("clipsuite")
    if not any(isinstance(h, _NoteHandler) for h in library.handlers):
        library.addHandler(_NoteHandler())
    if not getattr(warnings.showwarning, "clipsuite_notes", False):
        default = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
            # our own warnings (clipsuite.*) are notes for the user: one line, no Python source line
            if category.__module__.startswith("clipsuite."):
                library.warning(str(message))
            else:
                default(message, category, filename, lineno, file, line)

        show.clipsuite_notes = True  # type: ignore[attr-defined]
        warnings.showwarning = show


_route_library_notes()


def _new_run() -> None:
    """A command starts: its notes are its own (a process running several commands, as tests do, says each
    command's notes once for that command, and its pages show only them)."""
    from clipsuite.core.notices import clear_notes

    clear_notes()
    _route_library_notes()  # again: whoever ran before (pytest resets it per test) may have put theirs back
    for handler in logging.getLogger("clipsuite").handlers:
        if isinstance(handler, _NoteHandler):
            handler.said.clear()

HELP_WIDTH_OFF_TERMINAL = 120  # no option name, type or default is cut at this width


def _terminal_width() -> int | None:
    """The terminal's width as rich finds it (any of stdin, stdout, stderr), or None with no terminal at all."""
    import os

    for fd in (0, 1, 2):
        try:
            return os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
    return None


def _help_width() -> None:
    """``--help`` is drawn by rich, which with no terminal at all (a pipe from a script, a file, CliRunner) and no
    COLUMNS wraps at 80 columns and cuts words that do not fit a column with '…'. Off a terminal, draw it
    120 wide. Decided when the help is drawn (CliRunner sets COLUMNS per call); a terminal's own width,
    COLUMNS and typer's TERMINAL_WIDTH still decide when given."""
    import os

    from typer import rich_utils

    make = getattr(rich_utils, "_get_rich_console", None)
    if make is None or getattr(make, "clipsuite_width", False):  # another typer, or already wrapped
        return

    def console_for_help(stderr: bool = False) -> Console:
        console = make(stderr=stderr)
        if (rich_utils.MAX_WIDTH is None and not os.environ.get("COLUMNS", "").isdigit()
                and _terminal_width() is None):
            console.width = HELP_WIDTH_OFF_TERMINAL
        return console

    console_for_help.clipsuite_width = True  # type: ignore[attr-defined]
    rich_utils._get_rich_console = console_for_help


_help_width()


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one red line naming the problem and leave with a non-zero status."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # a path may hold "[...]"
    raise typer.Exit(code)


def need_some(paths: Sequence[Path], what: str) -> None:
    """Several inputs: refuse when none of them exists (a few missing ones are the skip policy's business)."""
    if paths and not any(p.exists() for p in paths):
        raise InputError(f"{paths[0]}: {what} not found" + (f" (nor the {len(paths) - 1} other inputs)"
                                                             if len(paths) > 1 else ""))


def cli_errors(func: F) -> F:
    """Turn the library's errors (and a few predictable OS ones) into one line, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _new_run()
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except ClipsuiteError as error:
            fail(error.cli_message)  # the advice in flag words where the library gave them
        except FileNotFoundError as error:
            fail(f"{error.filename}: file not found")
        except PermissionError as error:
            fail(f"{error.filename}: permission denied")
        except KeyboardInterrupt:
            fail("interrupted", code=130)

    return cast(F, wrapper)


def progress() -> Progress:
    """A rich bar on stderr, under the core's rule (``clipsuite.core.progress``): none in a redirected log."""
    from clipsuite.core.progress import progress_enabled

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=err_console,
                    disable=not progress_enabled(stream=err_console.file))
