"""Run configs drive the CLI: options come from a library dataclass, which alone checks them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import typer
from typer.testing import CliRunner

from clipsuite.cli.common import cli_errors, console
from clipsuite.cli.run_config import build_config, with_config_options
from clipsuite.core.contrastive_run import ContrastiveRun
from clipsuite.core.errors import InputError
from clipsuite.core.run_config import cli, cli_fields


def parse_list(text: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise InputError("--languages: give at least one")
    return items

runner = CliRunner()


@dataclass
class ToyRun:
    source: str | None = field(default=None, metadata=cli("What to read.", argument=True))
    epochs: int = field(default=3, metadata=cli("Passes."))
    batch_size: int = field(default=8, metadata=cli("Items per step.", "--batch-size", "-b"))
    fast: bool = field(default=False, metadata=cli("Go fast.", "--fast"))
    languages: tuple[str, ...] = field(default=("en", "fr"), metadata=cli("Comma list.", parse=parse_list))
    internal: int = 7  # no cli metadata: not an option

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise InputError(f"--epochs must be >= 1 (got {self.epochs})")


app = typer.Typer()


@app.command()
@cli_errors
@with_config_options(ToyRun)
def toy(ctx: typer.Context, values: dict[str, Any], loud: bool = False) -> None:
    run = build_config(ctx, ToyRun, values)
    console.print(f"{run.source} {run.epochs} {run.batch_size} {run.fast} {run.internal} loud={loud} "
                  f"{'+'.join(run.languages)}")


def test_options_come_from_the_fields_with_their_defaults_and_flags() -> None:
    assert runner.invoke(app, ["data.csv"]).output.strip() == "data.csv 3 8 False 7 loud=False en+fr"
    done = runner.invoke(app, ["data.csv", "--epochs", "5", "-b", "2", "--fast", "--loud", "--languages", "de, it"])
    assert done.output.strip() == "data.csv 5 2 True 7 loud=True de+it"
    help_text = " ".join(runner.invoke(app, ["--help"]).output.split())
    assert "--epochs" in help_text and "Passes." in help_text and "--internal" not in help_text
    assert "toy [OPTIONS] [SOURCE]" in help_text  # an argument named in capitals, as typer names its own
    assert "[default: (en,fr)]" in help_text  # a list's default shown as it is typed (typer brackets it)


def test_a_parsed_field_says_its_mistake_in_one_line() -> None:
    done = runner.invoke(app, ["data.csv", "--languages", " , "])
    assert done.exit_code == 2 and done.output.strip() == "error: --languages: give at least one"


def test_the_config_alone_checks_and_the_cli_says_it_in_one_line() -> None:
    done = runner.invoke(app, ["data.csv", "--epochs", "0"])
    assert done.exit_code == 2 and done.output.strip() == "error: --epochs must be >= 1 (got 0)"


def test_clipsuite_train_has_one_option_per_run_field() -> None:
    from clipsuite.cli.main import app as main_app

    command = typer.main.get_command(main_app).commands["train"]  # type: ignore[attr-defined]
    names = {p.name for p in command.params}
    assert {f.name for f, _ in cli_fields(ContrastiveRun)} <= names
    own = names - {f.name for f, _ in cli_fields(ContrastiveRun)}
    assert own == {"output", "resume", "overwrite", "verify", "workers", "quiet"}  # where and how, not what


def test_bounds_and_schedule_problems_name_the_flags() -> None:
    from pathlib import Path

    from clipsuite.core.run_config import below, flag_of, schedule_problems
    from clipsuite.core.train.config import TrainConfig

    run = ToyRun(source="x", epochs=3, batch_size=0)
    assert flag_of(ToyRun, "fast") == "--fast" and flag_of(ToyRun, "internal") == "--internal"
    assert below(run, 1, "epochs", "batch_size") == ["--batch-size must be >= 1 (got 0)"]
    assert below(run, 3, "epochs", strict=True) == ["--epochs must be > 3 (got 3)"]
    assert schedule_problems(lambda: TrainConfig(output_dir=Path("."), epochs=0, flags={"epochs": "--passes"})) == [
        "--passes must be >= 1 (got 0)"]
    assert schedule_problems(lambda: TrainConfig(output_dir=Path("."))) == []


def test_a_schedule_problem_names_only_the_flag_that_is_wrong() -> None:
    from pathlib import Path

    from clipsuite.core.run_config import schedule_problems
    from clipsuite.core.train.config import TrainConfig

    said = schedule_problems(lambda: TrainConfig(output_dir=Path("."), warmup_steps=-1,
                                                 flags={"warmup_steps": "--warmup"}))
    assert said == ["--warmup must be >= 0 (got -1)"]  # not "--warmup and --num-workers": most commands lack the latter
