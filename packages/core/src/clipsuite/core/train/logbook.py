"""``metrics.jsonl``: one JSON object per line, appended as training goes; ``Window``: the running sums
behind each logged line, which a checkpoint carries so a resumed run logs what an unbroken one would."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from clipsuite.core.checkpoints import atomic_write_text

METRICS_FILE = "metrics.jsonl"
WINDOW_PREFIX = "window."


class Window:
    """Sums of the logged loss parts over the micro-batches since the last log line (per process)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, parts: dict[str, torch.Tensor]) -> None:
        for key, value in parts.items():
            self.sums[key] = self.sums.get(key, 0.0) + value.detach().float().reshape(())
        self.count += 1

    def clear(self) -> None:
        self.sums, self.count = {}, 0

    def state(self) -> tuple[dict[str, torch.Tensor], int]:
        """``({"window.<key>": sum}, count)``: what a checkpoint stores (the sums as float32 CPU tensors)."""
        return {WINDOW_PREFIX + k: v.detach().cpu() for k, v in self.sums.items()}, self.count

    def load(self, tensors: dict[str, torch.Tensor], count: int, device: torch.device) -> None:
        """Restore what ``state`` returned (other keys are ignored; a checkpoint without a window leaves it empty)."""
        self.sums = {k[len(WINDOW_PREFIX):]: v.to(device) for k, v in tensors.items() if k.startswith(WINDOW_PREFIX)}
        self.count = int(count)


class MetricsLog:
    def __init__(self, output_dir: Path, enabled: bool = True) -> None:
        self.path = output_dir / METRICS_FILE
        self.enabled = enabled

    def reset(self, keep_until_step: int | None = None) -> None:
        """Start afresh, or (on resume) keep only the lines up to the checkpoint's step so the log
        holds no entries from the part of the killed run that is being redone."""
        if not self.enabled:
            return
        if keep_until_step is None or not self.path.exists():
            atomic_write_text(self.path, "")
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by the kill
                continue
            if int(entry.get("step", 0)) <= keep_until_step:
                kept.append(line)
        atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))

    def write(self, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in entry.items()}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(clean) + "\n")
            handle.flush()


def read_metrics(output_dir: Path | str) -> list[dict[str, Any]]:
    """The entries of a run's ``metrics.jsonl`` (skipping a torn last line)."""
    path = Path(output_dir) / METRICS_FILE
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries
