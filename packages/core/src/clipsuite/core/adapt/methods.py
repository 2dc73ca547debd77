"""The core's adaptation methods with the papers' defaults, declared as ``clipsuite.adapt_methods`` entry
points in ``packages/core/pyproject.toml`` (the registry itself is ``registry.py``).

Each ``fit(data, options) -> nn.Module`` returns a head (features -> logits) or a prompt learner ready
for ``io.save_adapter``. Options not given fall back to each method's defaults below.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

from clipsuite.core.adapt import gda, linear_probe, tip_adapter
from clipsuite.core.adapt.cocoop import CoCoOpClassifier
from clipsuite.core.adapt.coop import CoOpClassifier, PromptConfig
from clipsuite.core.adapt.data import AdaptData
from clipsuite.core.adapt.descriptions import cupl_head, descriptor_head
from clipsuite.core.adapt.feature_cache import FeatureDataset
from clipsuite.core.adapt.heads import LinearHead
from clipsuite.core.adapt.kgcoop import kgcoop_task
from clipsuite.core.adapt.maple import MaPLeClassifier, MaPLeConfig
from clipsuite.core.adapt.registry import Method, MethodOptions
from clipsuite.core.adapt.training import ClassificationTask, FitSettings, fit, freeze


def _coop_epochs(shots: int) -> int:
    return 50 if shots <= 1 else 100 if shots <= 4 else 200  # CoOp's schedule by shot count


def _settings(data: AdaptData, options: MethodOptions, epochs: int, lr: float, batch: int, optimizer: str = "sgd",
              weight_decay: float = 5e-4) -> FitSettings:
    return FitSettings(epochs=options.epochs if options.epochs is not None else epochs,
                       lr=options.lr if options.lr is not None else lr,
                       batch_size=options.batch_size if options.batch_size is not None else batch,
                       max_steps=options.max_steps, optimizer=options.optimizer or optimizer, weight_decay=weight_decay,
                       seed=data.seed, progress=options.progress)


def _prompt_config(options: MethodOptions, n_ctx: int) -> PromptConfig:
    init = "a photo of a" if options.ctx_init is None else options.ctx_init
    return PromptConfig(n_ctx=options.n_ctx or n_ctx, ctx_init=init or None, csc=options.csc,
                        class_token_position=options.class_token_position)


def _train_set(data: AdaptData, options: MethodOptions) -> FeatureDataset:
    return FeatureDataset(data.train_views() if options.augment else data.features("train"))


def fit_zeroshot(data: AdaptData, options: MethodOptions) -> nn.Module:
    return LinearHead(data.zero_shot(), None, data.scale)


def fit_coop(data: AdaptData, options: MethodOptions) -> nn.Module:
    freeze(data.clip)
    module = CoOpClassifier(data.clip, data.class_names, _prompt_config(options, 16))
    fit(ClassificationTask(data.clip, module), _train_set(data, options),
        _settings(data, options, _coop_epochs(data.shots), 2e-3, 32))
    return module


def fit_kgcoop(data: AdaptData, options: MethodOptions) -> nn.Module:
    freeze(data.clip)
    module = CoOpClassifier(data.clip, data.class_names, _prompt_config(options, 4))
    task = kgcoop_task(data.clip, module, data.class_names, data.template,
                       float(options.extra.get("kg_weight", 8.0)))
    fit(task, _train_set(data, options), _settings(data, options, _coop_epochs(data.shots), 2e-3, 32))
    return module


def fit_cocoop(data: AdaptData, options: MethodOptions) -> nn.Module:
    freeze(data.clip)
    module = CoCoOpClassifier(data.clip, data.class_names, _prompt_config(options, 4))
    fit(ClassificationTask(data.clip, module), _train_set(data, options), _settings(data, options, 10, 2e-3, 1))
    return module


def fit_maple(data: AdaptData, options: MethodOptions) -> nn.Module:
    freeze(data.clip)
    config = MaPLeConfig(n_ctx=options.n_ctx or 2, depth=int(options.extra.get("depth", 9)),
                         deep_init=str(options.extra.get("deep_init", "hidden")),
                         zero_vision=bool(options.extra.get("zero_vision", False)))
    module = MaPLeClassifier(data.clip, data.class_names, config)
    pixels, labels = data.pixels("train")
    dataset = _PixelDataset(pixels, labels)
    fit(ClassificationTask(data.clip, module, uses_pixels=True), dataset,
        _settings(data, options, 5, 3.5e-3, 4))
    return module


class _PixelDataset(TensorDataset):
    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:  # type: ignore[override]  # a dict batch, as tasks read it
        pixels, label = super().__getitem__(index)
        return {"pixels": pixels, "label": label}


def fit_tip(data: AdaptData, options: MethodOptions) -> nn.Module:
    head = tip_adapter.build(data.zero_shot(), data.train_views(), data.n_classes, data.scale)
    val = data.features("val")
    tip_adapter.search(head, val.features[0], val.labels)
    return head


def fit_tip_f(data: AdaptData, options: MethodOptions) -> nn.Module:
    views = data.train_views()
    head = tip_adapter.build(data.zero_shot(), views, data.n_classes, data.scale, train_keys=True)
    head.to(data.clip.device)
    fit(ClassificationTask(data.clip, head), FeatureDataset(views),
        _settings(data, options, 20, 1e-3, 256, optimizer="adamw", weight_decay=0.0))
    head.keys.requires_grad_(False)
    val = data.features("val")
    tip_adapter.search(head, val.features[0], val.labels)
    return head


def fit_gda(data: AdaptData, options: MethodOptions) -> nn.Module:
    features, labels = data.train_views().flat
    head = gda.build(data.zero_shot(), features, labels, data.n_classes, data.scale)
    val = data.features("val")
    gda.search(head, val.features[0], val.labels)
    return head


def fit_linear_probe(data: AdaptData, options: MethodOptions) -> nn.Module:
    train, val = data.features("train"), data.features("val")
    head, _ = linear_probe.fit_plain(train.features[0], train.labels, val.features[0], val.labels, data.n_classes)
    return head


def fit_clap(data: AdaptData, options: MethodOptions) -> nn.Module:
    train = data.features("train")
    zero_shot = data.zero_shot()
    lambdas = linear_probe.clap_lambdas(zero_shot, train.features[0], train.labels, data.scale)
    head = linear_probe.CLAPHead(zero_shot, data.scale, lambdas).to(data.clip.device)
    task = ClassificationTask(data.clip, head, extra_loss=lambda: {"constraint": head.penalty()})
    fit(task, _train_set(data, options), _settings(data, options, 300, 1e-3, 256, optimizer="adamw", weight_decay=0.0))
    return head


def fit_cupl(data: AdaptData, options: MethodOptions) -> nn.Module:
    return cupl_head(data.clip, data.class_names, options.sentences("cupl", data.class_names), data.scale)


def fit_descriptors(data: AdaptData, options: MethodOptions) -> nn.Module:
    return descriptor_head(data.clip, data.class_names, options.sentences("descriptors", data.class_names),
                           data.scale)


# ---- declared as entry points (packages/core/pyproject.toml), in the order of the papers' tables --------
ZEROSHOT = Method("zeroshot", "baseline", fit_zeroshot, uses_shots=False)
COOP = Method("coop", "prompt", fit_coop)
COCOOP = Method("cocoop", "prompt", fit_cocoop)
KGCOOP = Method("kgcoop", "prompt", fit_kgcoop)
MAPLE = Method("maple", "prompt", fit_maple)
TIP_ADAPTER = Method("tip-adapter", "training-free", fit_tip)
TIP_ADAPTER_F = Method("tip-adapter-f", "training-free", fit_tip_f)
GDA = Method("gda", "training-free", fit_gda)
LINEAR_PROBE = Method("linear-probe", "linear", fit_linear_probe)
CLAP = Method("clap", "linear", fit_clap)
CUPL = Method("cupl", "descriptions", fit_cupl, needs_descriptions=True, uses_shots=False)
DESCRIPTORS = Method("descriptors", "descriptions", fit_descriptors, needs_descriptions=True, uses_shots=False)
