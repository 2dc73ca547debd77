"""BiomedCoOp as an adaptation method of the core, and the paper's comparison table (its methods).

BiomedCoOp joins the core's method registry through this package's ``clipsuite.adapt_methods`` entry
point, so the one comparison runner (``clipsuite.core.adapt.runner.run``: methods x seeds on shared
K-shot draws, few-shot or base-to-novel, mean +- sd over seeds) and ``clipsuite adapt train --method
biomedcoop`` run it like any other; the medical side adds only its data and its LLM descriptions
(``MethodOptions.descriptions``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from clipsuite.core.adapt.coop import CoOpClassifier
from clipsuite.core.adapt.data import AdaptData
from clipsuite.core.adapt.feature_cache import FeatureDataset
from clipsuite.core.adapt.registry import Method, MethodOptions
from clipsuite.core.adapt.training import FitSettings, fit, freeze
from clipsuite.medical.methods.biomedcoop import (
    BiomedCoOpConfig,
    BiomedCoOpTask,
    llm_embeddings,
    prompt_config,
)

COMPARE_METHODS = ("zeroshot", "coop", "cocoop", "kgcoop", "biomedcoop")  # BiomedCoOp's paper table
PAPER_LR, PAPER_BATCH = 0.0025, 4


def fit_biomedcoop(data: AdaptData, descriptions: Mapping[str, Sequence[str]], options: MethodOptions | None = None,
                   cfg: BiomedCoOpConfig | None = None) -> CoOpClassifier:
    """Train BiomedCoOp's context on a K-shot draw; returns a CoOp classifier (saveable by the core)."""
    options = options or MethodOptions()
    cfg = cfg or BiomedCoOpConfig()
    freeze(data.clip)
    torch.manual_seed(data.seed)
    classifier = CoOpClassifier(data.clip, data.class_names, prompt_config(cfg))
    llm = llm_embeddings(data.clip, data.class_names, descriptions, cfg.n_prompts)
    task = BiomedCoOpTask(data.clip, classifier, llm, cfg)
    epochs = options.epochs if options.epochs is not None else 100  # the paper's few-shot schedule
    settings = FitSettings(epochs=epochs, lr=options.lr or PAPER_LR, batch_size=options.batch_size or PAPER_BATCH,
                           max_steps=options.max_steps, optimizer=options.optimizer or "sgd", weight_decay=5e-4,
                           seed=data.seed, progress=options.progress, precision="fp32")
    fit(task, FeatureDataset(data.features("train")), settings)
    return classifier


def _fit_registered(data: AdaptData, options: MethodOptions) -> CoOpClassifier:
    return fit_biomedcoop(data, options.sentences("biomedcoop", data.class_names), options)


BIOMEDCOOP = Method("biomedcoop", "prompt", _fit_registered, needs_descriptions=True)
