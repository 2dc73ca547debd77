"""Saving and loading the learned parts of AnomalyCLIP / AdaptCLIP (a small safetensors file).

The file holds only prompts/adapters; its JSON metadata names the method, its settings and the backbone
they were trained on, so ``detect``/``evaluate`` rebuild the same module and refuse a mismatched file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from clipsuite.core.checkpoints import load_tensors, read_config, save_tensors
from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel

LEARNED = ("anomalyclip", "adaptclip")


def build_learned(clip: ClipModel, method: str, settings: dict[str, Any] | None = None) -> nn.Module:
    settings = dict(settings or {})
    if method == "anomalyclip":
        from clipsuite.anomaly.methods.anomalyclip import AnomalyClip
        return AnomalyClip(clip, **settings)
    if method == "adaptclip":
        from clipsuite.anomaly.methods.adaptclip import AdaptClip
        return AdaptClip(clip, **settings)
    raise InputError(f"unknown learned method '{method}' (choose from {', '.join(LEARNED)})")


def save_learned(module: nn.Module, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    config = {"method": module.name, "settings": module.settings, "backbone": module.clip.name,
              "embed_dim": module.clip.embed_dim, **(extra or {})}
    save_tensors(path, module.learned_state(), config)
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
    if config.get("embed_dim") != clip.embed_dim:
        raise InputError(f"{weights}: trained on '{config.get('backbone')}' (embed dim {config.get('embed_dim')}), "
                         f"not on '{clip.name}' (embed dim {clip.embed_dim})")
    settings = dict(config.get("settings", {}))
    if smoothing_sigma is not None:
        settings["smoothing_sigma"] = smoothing_sigma
    module = build_learned(clip, method, settings)
    expected = module.learned_state()
    mismatched = [k for k, v in tensors.items() if k not in expected or expected[k].shape != v.shape]
    missing = [k for k in expected if k not in tensors]
    if mismatched or missing:
        raise InputError(f"{weights}: does not fit this backbone/method (e.g. {(mismatched or missing)[0]})")
    module.load_state_dict(tensors, strict=False)
    return module.eval()
