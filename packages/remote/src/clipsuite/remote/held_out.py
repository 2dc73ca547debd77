"""Where held-out captions come from, checked before anything loads (torch-free, so the CLI asks first).

A held-out split only exists inside a Karpathy JSON (``images[].split``); a CSV, JSONL, shards or class
folders have no split, and reading "the test split" of one would read every row: the training data
again, scored as if it were held out.
"""

from __future__ import annotations

from pathlib import Path

from clipsuite.core.errors import InputError


def check_held_out(source: str | Path, split: str | None, eval_split: str | None,
                   eval_source: str | Path | None = None) -> None:
    """Refuse, in one line, an ``eval_split`` that would score the training data."""
    if eval_split is None or eval_source is not None:
        return
    if Path(source).suffix.lower() != ".json":
        raise InputError(f"{source}: has no splits (only a Karpathy JSON does), so --eval-split '{eval_split}' "
                         "would score the training data; give held-out captions as their own file")
    if split is not None and eval_split == split:
        raise InputError(f"{source}: --eval-split '{eval_split}' is the training split; choose another (e.g. test)")
