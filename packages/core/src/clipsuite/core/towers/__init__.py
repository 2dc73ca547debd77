"""Towers: the one place that knows a backend's internals (see ``towers.base`` for the interface).

``vision_tower(clip)`` / ``text_tower(clip)`` pick the implementation by the ``ClipModel``'s
``backend`` attribute (``"open_clip"`` when absent). A backend adds itself with ``register_backend``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from clipsuite.core.errors import ModelError
from clipsuite.core.towers.base import BlockHook, BlockHooks, TextTower, VisionTower
from clipsuite.core.towers.hooks import capture, deep_prompt_hooks, merge, replace_span

if TYPE_CHECKING:
    from torch import nn

    from clipsuite.core.models import ClipModel

VisionFactory = Callable[["ClipModel"], VisionTower]
TextFactory = Callable[["ClipModel"], TextTower]

__all__ = ["BlockHook", "BlockHooks", "TextTower", "VisionTower", "capture", "deep_prompt_hooks", "merge",
           "register_backend", "replace_span", "text_tower", "vision_tower"]


def _open_clip_vision(clip: ClipModel) -> VisionTower:
    from clipsuite.core.towers.open_clip_vision import OpenClipVisionTower

    return OpenClipVisionTower(cast("nn.Module", clip.model.visual), clip.name)


def _open_clip_text(clip: ClipModel) -> TextTower:
    from open_clip.hf_model import HFTextEncoder

    from clipsuite.core.towers.open_clip_text import OpenClipHFTextTower, OpenClipTextTower

    if isinstance(getattr(clip.model, "text", None), HFTextEncoder):
        return OpenClipHFTextTower(clip)
    return OpenClipTextTower(clip)


def _transformers_vision(clip: ClipModel) -> VisionTower:
    from clipsuite.core.towers.transformers_clip import vision_tower as build

    return build(clip)


def _transformers_text(clip: ClipModel) -> TextTower:
    from clipsuite.core.towers.transformers_clip import text_tower as build

    return build(clip)


_BACKENDS: dict[str, tuple[VisionFactory, TextFactory]] = {"open_clip": (_open_clip_vision, _open_clip_text),
                                                           "transformers": (_transformers_vision, _transformers_text)}


def register_backend(name: str, vision: VisionFactory, text: TextFactory) -> None:
    """Make ``vision_tower`` / ``text_tower`` build ``vision(clip)`` / ``text(clip)`` for a ``ClipModel``
    whose ``backend`` is ``name``."""
    _BACKENDS[name] = (vision, text)


def _factories(clip: ClipModel) -> tuple[VisionFactory, TextFactory]:
    backend = str(getattr(clip, "backend", "open_clip"))
    if backend not in _BACKENDS:
        raise ModelError(f"{clip.name}: no towers for backend '{backend}' (known: {', '.join(sorted(_BACKENDS))})")
    return _BACKENDS[backend]


def vision_tower(clip: ClipModel) -> VisionTower:
    """The image tower of ``clip`` as steps; ``ModelError`` if this backend/architecture has none."""
    return _factories(clip)[0](clip)


def text_tower(clip: ClipModel) -> TextTower:
    """The text tower of ``clip`` with embeddings in; ``ModelError`` if unsupported."""
    return _factories(clip)[1](clip)
