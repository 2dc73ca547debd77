"""Run the benchmarks: ``uv run python shared/bench/run.py [names] [-- benchmark options]``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Before torch/faiss load their OpenMP runtime: idle threads sleep instead of spinning. On a shared,
# oversubscribed machine spinning made a 2-thread flat search 10x and a torch forward 3x slower
# (measured: 40 ms -> 4 ms per single query, 20k x 128). Export OMP_WAIT_POLICY=ACTIVE to undo.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import main

if __name__ == "__main__":
    main()
