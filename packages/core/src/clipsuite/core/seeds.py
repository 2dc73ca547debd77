"""Results over seeds: the mean and sample standard deviation per group, as the papers' tables give them.

One place for every "mean +- sd over seeds" of the suite (adaptation runs, BiomedCoOp's comparison,
the evidence tables). Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

R = TypeVar("R")
K = TypeVar("K", bound=Hashable)

__all__ = ["group_over_seeds", "mean_sd"]


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1); the deviation of a single value is 0."""
    if not values:
        raise ValueError("mean_sd of no values")
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def group_over_seeds(rows: Iterable[R], key: Callable[[R], K]) -> dict[K, list[R]]:
    """Rows grouped by ``key`` (method, shots ...), groups in the order they first appear (a table's rows)."""
    groups: dict[K, list[R]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups
