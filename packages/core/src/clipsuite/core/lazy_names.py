"""A package's names that load on first use (PEP 562 ``__getattr__``): importing the package stays light
(no torch) while ``from clipsuite.core.train import Trainer`` still works."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, where: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: ``where`` maps a name to its module (relative to ``package`` when it
    starts with '.'); a found name is put in ``namespace`` (the package's globals), so it is looked up once."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        module = where[name]
        value = getattr(importlib.import_module(package + module if module.startswith(".") else module), name)
        namespace[name] = value
        return value

    return __getattr__
