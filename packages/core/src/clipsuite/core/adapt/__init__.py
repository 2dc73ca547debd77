"""Few-shot adaptation of CLIP: prompt learners (CoOp, CoCoOp, KgCoOp, MaPLe), training-free adapters
(Tip-Adapter(-F), GDA), linear probes (plain, CLAP), LLM-description classifiers, the data they share
(Dassl splits, K-shot draws, a frozen-feature cache), the files they save and the one comparison runner.

Typical use::

    split = load_split("split.json")
    data = prepare(model, split, shots=16, seed=1)
    classifier, row = train_one("coop", data, output="coop.safetensors")
    classifier = load_classifier("coop.safetensors", model)   # later, without the training code
    rows = run(model, split, ["zeroshot", "coop"], shots=16, seeds=[1, 2, 3])   # the papers' comparison

Importing this package imports no torch: a CLI builds and checks an ``AdaptRun`` (``adapt_run.py``), reads a split
and names methods before anything heavy loads. The names of torch modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipsuite.core.adapt.adapt_run import AdaptRun
from clipsuite.core.adapt.fewshot_data import (
    Item,
    Split,
    base_novel,
    few_shot,
    load_class_folders,
    load_split,
    read_split,
)
from clipsuite.core.adapt.registry import Method, MethodOptions, find_method, installed_methods, resolve_methods
from clipsuite.core.adapt.results import Row, Summary, summarize, write_csv
from clipsuite.core.lazy_names import lazy_getattr

if TYPE_CHECKING:
    from clipsuite.core.adapt.io import LearnedClassifier, load_classifier, save_adapter
    from clipsuite.core.adapt.runner import evaluate_file, prepare, run, train_one

# name -> the module that defines it, imported when the name is first asked for
_LAZY = {"LearnedClassifier": ".io", "load_classifier": ".io", "save_adapter": ".io", "evaluate_file": ".runner",
         "prepare": ".runner", "run": ".runner", "train_one": ".runner"}

__all__ = ["AdaptRun", "Item", "LearnedClassifier", "Method", "MethodOptions", "Row", "Split", "Summary",
           "base_novel", "evaluate_file", "few_shot", "find_method", "installed_methods", "load_class_folders",
           "load_classifier", "load_split", "prepare", "read_split", "resolve_methods", "run", "save_adapter",
           "summarize", "train_one", "write_csv"]


__getattr__ = lazy_getattr("clipsuite.core.adapt", _LAZY, globals())
