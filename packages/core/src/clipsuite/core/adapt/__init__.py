"""Few-shot adaptation of CLIP: prompt learners (CoOp, CoCoOp, KgCoOp, MaPLe), training-free adapters
(Tip-Adapter(-F), GDA), linear probes (plain, CLAP), LLM-description classifiers, the data they share
(Dassl splits, K-shot draws, a frozen-feature cache) and the files they save.

Typical use::

    split = load_split("split.json")
    data = prepare(model, split, shots=16, seed=1)
    classifier, row = train_one("coop", data, output="coop.safetensors")
    classifier = load_classifier("coop.safetensors", model)   # later, without the training code
"""

from clipsuite.core.adapt.fewshot_data import (
           Item,
           Split,
           base_novel,
           few_shot,
           load_class_folders,
           load_split,
)
from clipsuite.core.adapt.io import LearnedClassifier, load_classifier, save_adapter
from clipsuite.core.adapt.registry import Method, MethodOptions, find_method, installed_methods, resolve_methods
from clipsuite.core.adapt.runner import Row, evaluate_file, prepare, run, train_one, write_csv

__all__ = ["Item", "LearnedClassifier", "Method", "MethodOptions", "Row", "Split", "base_novel", "evaluate_file",
           "few_shot", "find_method", "installed_methods", "load_class_folders", "load_classifier", "load_split",
           "prepare", "resolve_methods", "run", "save_adapter", "train_one", "write_csv"]
