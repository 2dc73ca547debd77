"""One vocabulary: every output is ``-o/--output``; no option a user typed before 2026-12-07 is gone.

``cli_options_2026-12-07.json`` is every command's option names on that day (``--out``, ``--json`` ...):
each must still be accepted (the old output names as hidden aliases of ``--output``: parsed, not in --help).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from clipsuite.cli.main import app

BEFORE = json.loads((Path(__file__).parent / "cli_options_2026-12-07.json").read_text(encoding="utf-8"))
OLD_OUTPUT_NAMES = {"--out", "--json"}
runner = CliRunner()


def _options() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def walk(command: object, path: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            found[" ".join(path)] = {o for p in command.params  # type: ignore[attr-defined]
                                     for o in p.opts + p.secondary_opts + getattr(p, "hidden_opts", [])
                                     if o.startswith("-")}

    walk(typer.main.get_command(app), ())
    return found


def test_no_option_of_before_is_gone() -> None:
    now = _options()
    missing = {command: sorted(set(names) - now.get(command, set())) for command, names in BEFORE.items()}
    assert {command: names for command, names in missing.items() if names} == {}


def test_every_primary_output_is_dash_o_output() -> None:
    now = _options()
    for command, names in now.items():
        if names & OLD_OUTPUT_NAMES:
            assert {"-o", "--output"} <= names, command


def test_old_output_names_are_parsed_but_not_shown(tmp_path: Path) -> None:
    now = _options()
    with_old = [command for command, names in now.items() if names & OLD_OUTPUT_NAMES]
    assert len(with_old) >= 20  # every domain app's outputs, under the umbrella
    for command in with_old:
        shown = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "200"}).output
        words = set(shown.replace("│", " ").replace(",", " ").split())  # rich joins a long option's names with ','
        assert "--output" in words and not OLD_OUTPUT_NAMES & words, command
    # typed, an old name reaches the command as --output: a folder of the user's is refused, naming --output
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    for argv in (["brain", "fit", "data.json", "--out", str(taken)],
                 ["medical", "classify", str(tmp_path), "--classes", "a,b", "--json", str(taken)]):
        done = runner.invoke(app, argv)
        assert done.exit_code == 2 and "--output" in done.output and "No such option" not in done.output, done.output
    assert (taken / "notes.txt").read_text() == "mine"


def test_each_domain_app_alone_hides_them_too() -> None:
    from clipsuite.cli.main import APPS

    apps = APPS.load_all()
    assert set(apps) == {"anomaly", "brain", "generative", "medical", "remote"}

    def shown(command: object) -> set[str]:  # every option name --help shows, nested commands included
        names = {o for p in getattr(command, "params", []) for o in p.opts}
        for sub in getattr(command, "commands", {}).values():
            names |= shown(sub)
        return names

    for name, domain_app in apps.items():  # as `clipsuite-<domain>` runs it, not mounted
        names = shown(typer.main.get_command(domain_app))
        assert "--output" in names and not OLD_OUTPUT_NAMES & names, name
