"""Plug-in points: named things that installed packages declare as entry points.

A package adds a preset, an adaptation method, an anomaly method, a CLI app or a demo step by declaring
one entry point in its ``pyproject.toml``; nothing in the core lists them::

    [project.entry-points."clipsuite.adapt_methods"]
    my-method = "my_package.adapt:MY_METHOD"

A ``Registry`` reads its group's entry points once (cached; ``clear_cache()`` re-reads them after
``sys.path`` changed), imports an entry only when its name is asked for, and fails with one line:
an unknown name lists the installed ones; a broken plug-in names its entry point and the failure.
Entries come in a stable order: the core's own first, then other packages by name, each package's by
entry-point name (build backends write ``entry_points.txt`` sorted, so declaration order is not kept).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from clipsuite.core.errors import ClipsuiteError, InputError

T = TypeVar("T")
CORE_DISTRIBUTION = "clipsuite-core"
_REGISTRIES: list[Registry[Any]] = []


class PluginError(ClipsuiteError):
    """An installed plug-in cannot be used: it fails to import, or is not what its group expects."""


def _distribution(entry: EntryPoint) -> str:
    return entry.dist.name if entry.dist is not None else "?"


def describe(entry: EntryPoint) -> str:
    """``'name = module:attr' (group G, package P)``: enough to find the declaration."""
    return f"'{entry.name} = {entry.value}' (group {entry.group}, package {_distribution(entry)})"


class Registry(Generic[T]):
    """The entry points of one group, by name.

    ``what`` names the kind in messages ("preset", "anomaly method"); ``accepts`` checks a loaded
    object and ``expected`` says in words what it should be. An object with a ``name`` attribute must
    carry its entry point's name, so a table and a lookup can never disagree.
    """

    def __init__(self, group: str, what: str, accepts: Callable[[Any], bool] | None = None,
                 expected: str = "") -> None:
        self.group = group
        self.what = what
        self.accepts = accepts
        self.expected = expected
        self._entries: dict[str, EntryPoint] | None = None
        self._loaded: dict[str, T] = {}
        _REGISTRIES.append(self)

    # ---- what is declared (metadata only, nothing imported) ----------------------------------------
    def entries(self) -> dict[str, EntryPoint]:
        if self._entries is None:
            self._entries = _read_group(self.group, self.what)
        return self._entries

    def names(self) -> list[str]:
        return list(self.entries())

    def __contains__(self, name: object) -> bool:
        return name in self.entries()

    # ---- loading ----------------------------------------------------------------------------------------
    def find(self, name: str) -> T | None:
        """The object declared as ``name``, or ``None`` when nothing installed declares that name."""
        entry = self.entries().get(name)
        if entry is None:
            return None
        if name not in self._loaded:
            self._loaded[name] = self._load(entry)
        return self._loaded[name]

    def get(self, name: str) -> T:
        """Like ``find``, but an unknown name is an ``InputError`` listing the installed names."""
        found = self.find(name)
        if found is None:
            raise InputError(f"unknown {self.what} '{name}' (installed: {', '.join(self.names()) or 'none'})")
        return found

    def load_all(self) -> dict[str, T]:
        """Every declared object, in registry order (imports every declaring module)."""
        return {name: self.get(name) for name in self.names()}

    def _load(self, entry: EntryPoint) -> T:
        try:
            value = entry.load()
        except Exception as error:  # anything raised inside a third-party module: name the plug-in, keep the cause
            raise PluginError(f"{self.what} {describe(entry)} failed to load: "
                              f"{type(error).__name__}: {error}") from error
        if self.accepts is not None and not self.accepts(value):
            raise PluginError(f"{self.what} {describe(entry)} is {type(value).__name__} {value!r:.80}, "
                              f"not {self.expected}")
        declared = getattr(value, "name", entry.name)
        if declared != entry.name:
            raise PluginError(f"{self.what} {describe(entry)} calls itself '{declared}'; "
                              "the entry point and the object must use the same name")
        return value  # checked by `accepts`, which is the registry's contract


def _read_group(group: str, what: str) -> dict[str, EntryPoint]:
    found = list(entry_points(group=group))  # distributions come in path-scan order: sort for a stable table
    by_name: dict[str, EntryPoint] = {}
    for entry in sorted(found, key=lambda e: (_distribution(e) != CORE_DISTRIBUTION, _distribution(e), e.name)):
        other = by_name.get(entry.name)
        if other is not None and other.value != entry.value:
            raise PluginError(f"{what} '{entry.name}' is declared twice: {describe(other)} and {describe(entry)}; "
                              "uninstall one of the packages")
        by_name.setdefault(entry.name, entry)
    return by_name


def clear_cache() -> None:
    """Forget what every registry read and loaded (after installing a package or changing ``sys.path``)."""
    for registry in _REGISTRIES:
        registry._entries = None
        registry._loaded.clear()


# ---- demo steps ---------------------------------------------------------------------------------------
@dataclass
class DemoStepResult:
    """What a ``clipsuite.demo_steps`` entry point returns: ``step(folder, log) -> DemoStepResult``.

    ``files`` and ``pictures`` map a label to a path inside ``folder`` (the step's own folder, given to
    it by the demo); absolute paths inside it are accepted and stored relative, since the demo folder is
    written under a staging name and renamed at the end. Pictures (PNG) are shown in the report, files
    are linked from it.
    """

    title: str
    summary: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    pictures: dict[str, Path] = field(default_factory=dict)

    def relative_to(self, folder: Path) -> DemoStepResult:
        """A copy whose paths are relative to ``folder``; a path outside it, a file not written or a metric
        that is not a number is a ``PluginError`` (the report would otherwise break or mislead)."""
        for key, value in self.metrics.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise PluginError(f"demo step metric '{key}' is {value!r}, not a number")
        return DemoStepResult(self.title, list(self.summary), dict(self.metrics),
                              {k: _inside(Path(v), folder, k) for k, v in self.files.items()},
                              {k: _inside(Path(v), folder, k) for k, v in self.pictures.items()})

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "summary": self.summary, "metrics": self.metrics,
                "files": {k: str(v) for k, v in self.files.items()},
                "pictures": {k: str(v) for k, v in self.pictures.items()}}


def _inside(path: Path, folder: Path, label: str) -> Path:
    # A path the step built from its (absolute) folder comes back relative; one already relative is
    # read as relative to the folder.
    folder = folder.resolve()
    relative = path.relative_to(folder) if path.is_absolute() and path.is_relative_to(folder) else path
    if relative.is_absolute() or ".." in relative.parts:
        raise PluginError(f"demo step file '{label}' ({path}) is outside the step's folder {folder}")
    if not (folder / relative).is_file():
        raise PluginError(f"demo step file '{label}': {folder / relative} was not written")
    return relative
