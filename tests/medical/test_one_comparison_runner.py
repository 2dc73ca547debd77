"""BiomedCoOp's comparison runs on the core's one runner (``clipsuite.core.adapt.runner.run``): the rows, the
means over seeds and the tables are those the medical package's own loop gave before it was removed
(measured with that loop, one CPU thread: tiny-hf, the 4-class slice set, 4 shots, seeds 1 and 2)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from clipsuite.core.adapt.registry import MethodOptions
from clipsuite.core.adapt.results import summarize, summary_text
from clipsuite.core.adapt.runner import run
from clipsuite.core.models import load_model
from clipsuite.core.prompts import load_descriptions
from clipsuite.medical.data import load_dassl_split

METHODS = ["zeroshot", "coop", "biomedcoop"]
OPTIONS = MethodOptions(epochs=10, lr=0.05, optimizer="adam", batch_size=4)
FEW_SHOT = [("zeroshot", 1, 25.0), ("coop", 1, 50.0), ("biomedcoop", 1, 50.0),
            ("zeroshot", 2, 25.0), ("coop", 2, 58.33), ("biomedcoop", 2, 50.0)]
BASE_TO_NOVEL = [("zeroshot", 1, 50.0, 50.0, 50.0), ("coop", 1, 100.0, 50.0, 66.67),
                 ("biomedcoop", 1, 100.0, 50.0, 66.67), ("zeroshot", 2, 50.0, 50.0, 50.0),
                 ("coop", 2, 50.0, 50.0, 50.0), ("biomedcoop", 2, 100.0, 33.33, 50.0)]
B2N_TABLE = ("method | base | novel | HM\n--- | --- | --- | ---\nzeroshot | 50.00 | 50.00 | 50.00\n"
             "coop | 75.00 | 50.00 | 60.00\nbiomedcoop | 100.00 | 41.67 | 58.82")


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """The measurement's thread count (a sum over more threads may round differently)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_thread")
def test_medical_rows_are_those_of_the_removed_loop(slices_split: Path) -> None:
    split = load_dassl_split(slices_split)
    options = replace(OPTIONS, descriptions=load_descriptions(slices_split.parent / "descriptions.json",
                                                              split.class_names))
    clip = load_model("tiny-hf", device="cpu")
    few = run(clip, split, METHODS, shots=4, seeds=[1, 2], options=options, views=0)
    assert [(r.method, r.seed, round(r.accuracy, 2)) for r in few] == FEW_SHOT
    assert all(r.shots == 4 and r.novel is None and r.hm is None for r in few)
    assert summary_text(few) == "method | 4-shot acc\n--- | ---\nzeroshot | 25.00\ncoop | 54.17\nbiomedcoop | 50.00"
    b2n = run(clip, split, METHODS, shots=4, seeds=[1, 2], options=options, views=0, protocol="base-to-novel")
    assert [(r.method, r.seed, round(r.accuracy, 2), round(r.novel or -1, 2), round(r.hm or -1, 2))
            for r in b2n] == BASE_TO_NOVEL
    assert summary_text(b2n) == B2N_TABLE
    coop = summarize(b2n)[1]
    assert (coop.method, coop.seeds, coop.accuracy, round(coop.accuracy_sd, 2)) == ("coop", 2, 75.0, 35.36)
