"""clipsuite.core: the shared CLIP core every clipsuite domain builds on.

Names are imported lazily so that light commands (listing presets) do not pay for torch.
"""

from __future__ import annotations

from clipsuite.core.lazy_names import lazy_getattr

_EXPORTS = {
    "ClipModel": "clipsuite.core.models",
    "load_model": "clipsuite.core.models",
    "ClipsuiteError": "clipsuite.core.errors",
    "InputError": "clipsuite.core.errors",
    "ModelError": "clipsuite.core.errors",
    "WeightsUnavailableError": "clipsuite.core.errors",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr("clipsuite.core", _EXPORTS, globals())
