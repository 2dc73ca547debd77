"""A comparison's results, torch-free: one row per (method, shots, seed), the mean +- sd over seeds per
(method, shots), and the tables built from them (CSV, plain text).

A row's ``accuracy`` is top-1 in percent on the test part (few-shot) or on the base classes
(base-to-novel, which also fills ``novel``, the novel classes with the same learned prompts, and ``hm``,
the harmonic mean of the two).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from clipsuite.core.seeds import group_over_seeds, mean_sd
from clipsuite.core.tabular import write_table

PROTOCOLS = ("few-shot", "base-to-novel")
COLUMNS = ("method", "shots", "seed", "accuracy")
B2N_COLUMNS = (*COLUMNS, "novel", "hm")


@dataclass
class Row:
    method: str
    shots: int
    seed: int
    accuracy: float              # few-shot: test accuracy; base-to-novel: base accuracy
    novel: float | None = None   # base-to-novel only
    hm: float | None = None      # base-to-novel only: harmonic mean of accuracy and novel


@dataclass(frozen=True)
class Summary:
    """One (method, shots) over its seeds: means and sample standard deviations (``clipsuite.core.seeds``)."""

    method: str
    shots: int
    seeds: int
    accuracy: float
    accuracy_sd: float
    novel: float | None = None
    novel_sd: float | None = None
    hm: float | None = None      # of the two means, as the papers' tables give it


def harmonic_mean(base: float, novel: float) -> float:
    """The base-to-novel summary of base and novel accuracy (0 when both are 0)."""
    return 2 * base * novel / (base + novel) if base + novel > 0 else 0.0


def summarize(rows: Sequence[Row]) -> list[Summary]:
    """Mean +- sd over seeds per (method, shots), in first-seen order (the papers' table rows)."""
    table = []
    for (method, shots), group in group_over_seeds(rows, lambda r: (r.method, r.shots)).items():
        accuracy, accuracy_sd = mean_sd([r.accuracy for r in group])
        entry = Summary(method, shots, len(group), accuracy, accuracy_sd)
        if group[0].novel is not None:
            novel, novel_sd = mean_sd([r.novel or 0.0 for r in group])
            entry = replace(entry, novel=novel, novel_sd=novel_sd, hm=harmonic_mean(accuracy, novel))
        table.append(entry)
    return table


def summary_text(rows: Sequence[Row]) -> str:
    """A plain-text table of the means over seeds: method | K-shot acc, or method | base | novel | HM (a
    shots column when the rows hold several K)."""
    table = summarize(rows)
    b2n = bool(table) and table[0].novel is not None
    several = len({entry.shots for entry in table}) > 1
    first = ["method", "shots"] if several else ["method"]
    header = [*first, "base", "novel", "HM"] if b2n else [
        *first, "acc" if several or not rows else f"{rows[0].shots}-shot acc"]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for entry in table:
        values = [entry.accuracy, entry.novel or 0.0, entry.hm or 0.0] if b2n else [entry.accuracy]
        names = [entry.method, str(entry.shots)] if several else [entry.method]
        lines.append(" | ".join([*names, *(f"{v:.2f}" for v in values)]))
    return "\n".join(lines)


def _two(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def write_csv(path: str | os.PathLike[str], rows: Sequence[Row], columns: Sequence[str] = COLUMNS) -> Path:
    """Every run as a table (CSV, or TSV / JSONL by the name); ``B2N_COLUMNS`` adds novel and hm."""
    return write_table(path, [{"method": r.method, "shots": r.shots, "seed": r.seed, "accuracy": _two(r.accuracy),
                               "novel": _two(r.novel), "hm": _two(r.hm)} for r in rows], columns)
