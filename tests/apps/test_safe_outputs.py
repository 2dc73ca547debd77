"""Every command that writes refuses a folder holding the user's files, before any work, and deletes nothing.

The commands are discovered from the CLI itself (the umbrella ``clipsuite`` with every installed domain
app mounted), not listed by hand: a new command with an output option is tested the day it is added.
Each output option in turn points at a folder holding a user's file and a user's subfolder; the other
required arguments get placeholder paths, since the output is checked first. The command must answer
exit 2 with one line naming that folder, and both of the user's things must be there afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from clipsuite.cli.main import app

runner = CliRunner()
OUTPUT_FLAGS = ("--output", "--out", "--json", "--csv", "--run-dir")  # every name an output goes by
REFUSALS = ("holds files this command did not write", "is a folder")  # a folder output / a file output


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield path, command


def _output_cases() -> list[tuple[tuple[str, ...], str]]:
    cases = []
    for path, command in _leaves(typer.main.get_command(app)):
        for param in command.params:
            long = [opt for opt in param.opts if opt in OUTPUT_FLAGS]
            if long:
                cases.append((path, long[0]))
    return cases


CASES = _output_cases()


def test_discovery_finds_the_commands_of_every_app() -> None:
    commands = {path for path, _ in CASES}
    for expected in [("embed",), ("index", "build"), ("remote", "search"), ("brain", "fit"), ("brain", "encode"),
                     ("generative", "tryon"), ("anomaly", "detect"), ("medical", "classify")]:
        assert expected in commands, expected
    assert len(CASES) >= 30


def _args(command: Any, output_flag: str, user: Path, placeholder: Path) -> list[str]:
    """The output at ``user``; every other required argument or option a placeholder path."""
    args: list[str] = []
    for param in command.params:
        if output_flag in param.opts:
            args += [output_flag, str(user)]
        elif param.required:
            annotation = param.type_descriptor.annotation
            value = "1" if annotation in (int, float) else str(placeholder)
            args += [value] if param.param_type_name == "argument" else [param.opts[0], value]
    return args


@pytest.mark.parametrize(("path", "flag"), CASES, ids=[" ".join(p) + " " + f for p, f in CASES])
def test_a_users_folder_survives_every_command(path: tuple[str, ...], flag: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # default outputs of the other options land here, not in the checkout
    user = tmp_path / "user"
    (user / "sub").mkdir(parents=True)
    (user / "notes.txt").write_text("my notes\n")
    (user / "sub" / "data.csv").write_text("a,b\n1,2\n")
    placeholder = tmp_path / "placeholder.txt"
    placeholder.write_text("x\n")
    command = dict(_leaves(typer.main.get_command(app)))[path]
    result = runner.invoke(app, [*path, *_args(command, flag, user, placeholder)])
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())
    assert str(user) in line and any(refusal in line for refusal in REFUSALS), result.output
    assert "Traceback" not in result.output
    assert sorted(p.relative_to(user).as_posix() for p in user.rglob("*")) == ["notes.txt", "sub", "sub/data.csv"]
    assert (user / "notes.txt").read_text() == "my notes\n" and (user / "sub" / "data.csv").read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["placeholder.txt", "user"]  # nothing made beside it


@pytest.mark.parametrize(("module", "argv"), [
    ("clipsuite.cli.main", ["embed", "{placeholder}", "-o", "{user}"]),
    ("clipsuite.remote_app.main", ["search", "{placeholder}", "trees", "-o", "{user}"]),
    ("clipsuite.brain_app.main", ["fit", "{placeholder}", "-o", "{user}"]),
])
def test_the_refusal_comes_before_torch(module: str, argv: list[str], tmp_path: Path, before_torch: Any) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine\n")
    placeholder = tmp_path / "placeholder.txt"
    placeholder.write_text("x\n")
    args = [a.format(placeholder=placeholder, user=user) for a in argv]
    report, lines = before_torch(module, args)
    assert report == {"code": 2, "torch": False, "open_clip": False}, lines
    assert len(lines) == 1 and "holds files this command did not write (notes.txt)" in lines[0], lines
    assert (user / "notes.txt").read_text() == "mine\n"
