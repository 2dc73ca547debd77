"""Evidence that the medical prompt learners learn: BiomedCoOp's paper table (zero-shot, CoOp, CoCoOp,
KgCoOp, BiomedCoOp at K shots, and base-to-novel) on the offline pretrained backbone
(``clipsuite.core.pretrain``) with the synthetic CT slice set (``synthetic.write_slice_dataset``).

The same functions feed the tests (``tests/medical/test_evidence.py``) and ``docs/medical.md``::

    uv run python shared/recipes/evidence_medical.py --shots 1,4,16 --seeds 1,2,3

prints the Markdown tables (and builds the pretrained backbone first when it is not cached).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clipsuite.core.adapt.registry import MethodOptions
from clipsuite.core.adapt.results import Row, Summary, summarize
from clipsuite.core.adapt.runner import run
from clipsuite.core.models import ClipModel
from clipsuite.core.prompts import load_descriptions
from clipsuite.medical import synthetic
from clipsuite.medical.data import load_dassl_split
from clipsuite.medical.fewshot import COMPARE_METHODS


@dataclass(frozen=True)
class SliceSetup:
    task: str = "organ"       # brain, lung, liver, pelvis (a third of the slices carry a tumor)
    n_per_class: int = 40     # half train (so 16 shots fit), a quarter val, a quarter test
    image_size: int = 64
    seed: int = 0
    # Adam at lr 0.02 for 10 epochs, not the paper's SGD 0.0025 x 100: a table in minutes on 2 CPU cores
    options: MethodOptions = dataclasses.field(
        default_factory=lambda: MethodOptions(epochs=10, lr=0.02, optimizer="adam", batch_size=16))


def write_data(root: str | Path, setup: SliceSetup) -> Path:
    return synthetic.write_slice_dataset(root, n_per_class=setup.n_per_class, image_size=setup.image_size,
                                         seed=setup.seed, task=setup.task)


def run_table(clip: ClipModel, split_path: Path, setup: SliceSetup, shots: Sequence[int],
              seeds: Sequence[int], methods: Sequence[str] = COMPARE_METHODS,
              protocol: str = "few-shot", options: MethodOptions | None = None) -> list[Row]:
    """Rows of the core's comparison runner for every K in ``shots``, with the set's LLM descriptions."""
    split = load_dassl_split(split_path)
    descriptions = load_descriptions(split_path.parent / "descriptions.json", split.class_names)
    options = dataclasses.replace(options or setup.options, descriptions=descriptions)
    rows: list[Row] = []
    for k in shots:
        rows += run(clip, split, methods, shots=k, seeds=seeds, options=options, views=0, protocol=protocol)
    return rows


def means(rows: Sequence[Row]) -> dict[tuple[str, int], Summary]:
    """(method, shots) -> mean +- sd over seeds."""
    return {(entry.method, entry.shots): entry for entry in summarize(rows)}


def _cell(mean: float, sd: float, seeds: int) -> str:
    return f"{mean:.1f} ± {sd:.1f}" if seeds > 1 else f"{mean:.1f}"


def few_shot_markdown(rows: Sequence[Row]) -> str:
    """Mean (± standard deviation over seeds) accuracy per method and K."""
    table = means(rows)
    shots = list(dict.fromkeys(r.shots for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    seeds = len({r.seed for r in rows})
    lines = ["| method | " + " | ".join(f"{k}-shot" for k in shots) + " |", "|---" * (len(shots) + 1) + "|"]
    for m in methods:
        cells = [_cell(table[(m, k)].accuracy, table[(m, k)].accuracy_sd, seeds) for k in shots]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def base_novel_markdown(rows: Sequence[Row]) -> str:
    """Mean base / novel accuracy (± standard deviation over seeds) and the HM of the means."""
    seeds = len({r.seed for r in rows})
    lines = ["| method | shots | base | novel | HM |", "|---|---|---|---|---|"]
    for (method, k), entry in means(rows).items():
        base = _cell(entry.accuracy, entry.accuracy_sd, seeds)
        novel = _cell(entry.novel or 0.0, entry.novel_sd or 0.0, seeds)
        lines.append(f"| {method} | {k} | {base} | {novel} | {entry.hm or 0.0:.1f} |")
    return "\n".join(lines)


def evidence_tables(clip: ClipModel, shots: Sequence[int], b2n_shots: Sequence[int], seeds: Sequence[int],
                    methods: Sequence[str]) -> str:
    """The few-shot and base-to-novel tables of docs/medical.md, as Markdown (``shared/recipes`` runs it)."""
    setup = SliceSetup()
    seed_text = ",".join(map(str, seeds))
    with tempfile.TemporaryDirectory(prefix="clipsuite-medical-evidence-") as tmp:
        split = write_data(tmp, setup)
        few = run_table(clip, split, setup, list(shots), list(seeds), list(methods))
        b2n = run_table(clip, split, setup, list(b2n_shots), list(seeds), list(methods), protocol="base-to-novel")
    return (f"Few-shot accuracy (%), {setup.task} slices, mean of seeds {seed_text}\n\n{few_shot_markdown(few)}\n\n"
            f"Base-to-novel (%), mean of seeds {seed_text}\n\n{base_novel_markdown(b2n)}")
