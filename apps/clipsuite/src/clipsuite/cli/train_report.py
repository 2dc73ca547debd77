"""What a training command did, said the same way by every clipsuite command that trains on the core Trainer:
where a resumed run started, the steps it trained, the final training loss and the held-out figures."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from clipsuite.cli.common import console

if TYPE_CHECKING:  # the report runs after training, but this module is imported before torch
    from clipsuite.core.train import TrainResult

_NOT_METRICS = {"step", "epoch", "lr"}


def _last_logged(result: TrainResult) -> dict[str, float]:
    """The run's last logged values, from its ``metrics.jsonl``: a resumed run with nothing left to train
    logged nothing in this process, yet has a final loss."""
    from clipsuite.core.train import read_metrics

    last: dict[str, float] = {}
    if not (result.output_dir / "metrics.jsonl").is_file():
        return last
    for entry in read_metrics(result.output_dir):
        last.update({k: float(v) for k, v in entry.items() if k not in _NOT_METRICS and isinstance(v, int | float)})
    return last


def _figure(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def training_lines(result: TrainResult, held_out: Mapping[str, float] | None = None, unit: str = "",
                   longer: str = "--epochs") -> list[str]:
    """The report as lines. ``held_out``: the held-out figures to show (default: the run's ``eval/`` metrics;
    an empty mapping when the command prints its own table); ``unit``: what a figure is (" %", for example);
    ``longer``: the flag that makes a resumed run train longer."""
    values = dict(result.metrics)
    if "loss" not in values:
        values = {**_last_logged(result), **values}
    lines = []
    resumed = result.resumed_from
    if resumed is not None:
        lines.append(f"resumed at step {resumed}")
        if resumed >= result.step:
            lines.append(f"nothing left to train: the run had done its {result.step} steps (raise {longer} to "
                         "train longer)")
    now = result.step - (resumed or 0)
    done = f"trained {result.step} steps ({result.epoch:.3g} epoch{'' if result.epoch == 1 else 's'})"
    if resumed is not None and now > 0:
        done += f", {now} of them now"
    parts = {k: v for k, v in values.items() if "/" not in k and k != "loss"}
    if "loss" in values:
        done += f"; final loss {_figure(values['loss'])}"
        if parts:
            done += " (" + ", ".join(f"{k} {_figure(v)}" for k, v in sorted(parts.items())) + ")"
    lines.append(done)
    figures = held_out if held_out is not None else {k[len("eval/"):]: v for k, v in values.items()
                                                     if k.startswith("eval/")}
    if figures:
        lines.append("held-out: " + ", ".join(f"{k} {_figure(v)}{unit}" for k, v in sorted(figures.items())))
    return lines


def report_training(result: TrainResult, held_out: Mapping[str, float] | None = None, unit: str = "",
                    longer: str = "--epochs") -> None:
    """Print ``training_lines`` on the console."""
    for line in training_lines(result, held_out, unit, longer):
        console.print(line, soft_wrap=True)
