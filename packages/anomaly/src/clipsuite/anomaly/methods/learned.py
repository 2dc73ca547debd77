"""Building trained methods (AnomalyCLIP, AdaptCLIP, any registered class with ``trained = True``) and
saving/loading their learned parts (a small safetensors file).

A trained method class is built as ``cls(clip, **settings)`` and offers ``settings`` (the keyword
arguments that rebuild it), ``learned_state()`` (the tensors to save) and ``loss(batch)`` (training).
The file holds only prompts/adapters; its JSON metadata names the method, its settings and the backbone
they were trained on, so ``detect``/``evaluate`` rebuild the same module and refuse a mismatched file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, cast

import torch
from torch import nn

from clipsuite.anomaly.methods.base import method_class, method_names
from clipsuite.core.checkpoints import load_tensors, read_config, save_tensors
from clipsuite.core.errors import InputError
from clipsuite.core.fingerprint import check_same_backbone
from clipsuite.core.models import ClipModel


class TrainedMethod(Protocol):
    """What a trained method module offers beyond ``nn.Module`` (see the module docstring)."""

    name: ClassVar[str]
    clip: ClipModel
    settings: dict[str, Any]

    def learned_state(self) -> dict[str, torch.Tensor]: ...

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...


def build_learned(clip: ClipModel, method: str, settings: dict[str, Any] | None = None) -> nn.Module:
    """A fresh (untrained) instance of the trained method ``method`` with ``settings``."""
    cls = method_class(method)
    if not cls.trained:
        raise InputError(f"method '{method}' has nothing to train (trained methods: "
                         f"{', '.join(method_names(trained=True))})")
    # trained methods are nn.Modules that take (clip, **settings); the protocol has no constructor
    return cast(nn.Module, cls(clip, **dict(settings or {})))  # type: ignore[call-arg]  # see above


def save_learned(module: nn.Module, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    method = cast(TrainedMethod, module)
    identity = method.clip.identity()
    config = {"method": method.name, "settings": method.settings, "backbone": identity["model"],
              "backbone_hash": identity["model_hash"], "backbone_dtype": identity["model_dtype"],
              "backbone_image_size": identity["model_image_size"],
              "embed_dim": method.clip.embed_dim, **(extra or {})}
    save_tensors(path, method.learned_state(), config)
    return path


def load_learned(clip: ClipModel, method: str, weights: str | Path | None,
                 smoothing_sigma: float | None = None) -> nn.Module:
    if weights is None:
        raise InputError(f"method '{method}' needs trained prompts/adapters: pass --weights FILE "
                         f"(made by `clipsuite-anomaly train --method {method}`)")
    weights = Path(weights)
    tensors = load_tensors(weights)
    config = read_config(weights) or {}
    if config.get("method") != method:
        raise InputError(f"{weights}: holds '{config.get('method', 'unknown')}' weights, not '{method}'")
    check_same_backbone(weights, config, clip, prefix="backbone")
    if config.get("embed_dim") != clip.embed_dim:
        raise InputError(f"{weights}: trained on '{config.get('backbone')}' (embed dim {config.get('embed_dim')}), "
                         f"not on '{clip.name}' (embed dim {clip.embed_dim})")
    settings = dict(config.get("settings", {}))
    if smoothing_sigma is not None:
        settings["smoothing_sigma"] = smoothing_sigma
    module = build_learned(clip, method, settings)
    expected = cast(TrainedMethod, module).learned_state()
    mismatched = [k for k, v in tensors.items() if k not in expected or expected[k].shape != v.shape]
    missing = [k for k in expected if k not in tensors]
    if mismatched or missing:
        raise InputError(f"{weights}: does not fit this backbone/method (e.g. {(mismatched or missing)[0]})")
    module.load_state_dict(tensors, strict=False)
    # what it was trained on (files from before this was stored: unknown, empty)
    module.trained_images = frozenset(str(p) for p in config.get("trained_images", []))  # type: ignore[assignment]
    return module.eval()
