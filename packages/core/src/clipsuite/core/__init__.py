"""clipsuite.core: the shared CLIP core every clipsuite domain builds on.

Names are imported lazily so that light commands (listing presets) do not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ClipModel": "clipsuite.core.models",
    "load_model": "clipsuite.core.models",
    "ClipsuiteError": "clipsuite.core.errors",
    "InputError": "clipsuite.core.errors",
    "ModelError": "clipsuite.core.errors",
    "WeightsUnavailableError": "clipsuite.core.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'clipsuite.core' has no attribute {name!r}")
