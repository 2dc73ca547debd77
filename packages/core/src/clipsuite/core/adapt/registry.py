"""Adaptation methods by name: what a method is, the options a user may override, and the registry.

Methods are ``Method`` objects declared as entry points of the group ``clipsuite.adapt_methods``; the
core declares its own (``methods.py``) the same way a domain or third-party package declares one::

    [project.entry-points."clipsuite.adapt_methods"]
    biomedcoop = "clipsuite.medical.fewshot:BIOMEDCOOP"
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clipsuite.core.errors import InputError
from clipsuite.core.plugins import Registry

if TYPE_CHECKING:
    from torch import nn

    from clipsuite.core.adapt.data import AdaptData

Sentences = Mapping[str, Sequence[str]]


@dataclass
class MethodOptions:
    """User overrides; ``None`` keeps the method's default."""

    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    max_steps: int | None = None
    optimizer: str | None = None  # sgd | adam | adamw
    n_ctx: int | None = None
    ctx_init: str | None = None  # "" for random init
    csc: bool = False
    class_token_position: str = "end"
    augment: bool = False  # prompt learners: train on the augmented views instead of plain features
    descriptions: str | os.PathLike[str] | Sentences | None = None  # class -> sentences: a JSON file or in memory
    progress: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def sentences(self, method: str, class_names: Sequence[str]) -> Sentences:
        """The class -> sentences of ``descriptions`` (a file is read and checked against ``class_names``)."""
        if self.descriptions is None or self.descriptions == "":
            raise InputError(f"method '{method}' needs a descriptions JSON (LLM sentences per class, "
                             "class -> sentences); pass --descriptions")
        if isinstance(self.descriptions, Mapping):
            return self.descriptions
        from clipsuite.core.prompts import load_descriptions

        return load_descriptions(self.descriptions, class_names)


@dataclass(frozen=True)
class Method:
    """One adaptation method: ``fit(data, options)`` returns the trained head or prompt learner.

    ``uses_shots`` False: nothing is learned from the K-shot images (zero-shot, description
    classifiers), so on other classes the method is simply fitted again.
    """

    name: str
    kind: str  # baseline | prompt | training-free | linear | descriptions
    fit: Callable[[AdaptData, MethodOptions], nn.Module]
    needs_descriptions: bool = False
    uses_shots: bool = True


KIND_ORDER = ("baseline", "prompt", "training-free", "linear", "descriptions")  # the papers' table order
REGISTRY: Registry[Method] = Registry("clipsuite.adapt_methods", "adaptation method",
                                      lambda value: isinstance(value, Method), "a clipsuite.core.adapt.registry.Method")


def find_method(name: str) -> Method:
    """The installed method ``name``; an unknown name lists the installed ones."""
    return REGISTRY.get(name)


def installed_methods() -> dict[str, Method]:
    """Every installed method, grouped by kind as the papers' tables are (other kinds last), then in
    registry order (the core's first)."""
    found = REGISTRY.load_all()
    rank = {kind: i for i, kind in enumerate(KIND_ORDER)}
    return dict(sorted(found.items(), key=lambda item: rank.get(item[1].kind, len(rank))))


def check_method_names(names: Sequence[str]) -> None:
    """Refuse an unknown or missing method name in one line; reads only the installed metadata (no import,
    so a CLI checks a typo before torch)."""
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise InputError(f"unknown method '{unknown[0]}' (choose from {', '.join(REGISTRY.names())} or 'all')")
    if not names:
        raise InputError("no method given")


def resolve_methods(spec: str | Sequence[str], have_descriptions: bool = False) -> list[str]:
    """``all``, a comma-separated list, or a list of names -> installed method names (``all``: registry order)."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip().lower() for n in names if n.strip()]
    if names == ["all"]:
        return [m.name for m in installed_methods().values() if have_descriptions or not m.needs_descriptions]
    check_method_names(names)
    return names
