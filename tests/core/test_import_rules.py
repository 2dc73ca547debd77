"""The direction of the layers, checked on the code: app -> domain library -> core, never back or across.

- A library (packages/*) imports no CLI framework (typer, rich, argparse): a library user gets functions.
- The core imports no domain; a domain imports no other domain.
- A domain's methods never import its trainer (a method is used by the trainer, not the other way).
- Outside the core nothing reaches into a ``ClipModel``'s raw module (``clip.model``): training takes
  ``ClipModel.network`` / ``freeze`` / ``train_temperature``, steps go through ``clipsuite.core.towers``.
- ``clipsuite.core.train`` imports without torch, so a CLI can build and check a ``TrainConfig`` first.
Imports inside functions count too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = tuple(sorted(p.name for p in (ROOT / "packages").iterdir() if p.is_dir() and p.name != "core"))
CLI_FRAMEWORKS = ("typer", "rich", "argparse", "click")


def _library_files() -> list[Path]:
    return sorted(ROOT.glob("packages/*/src/clipsuite/**/*.py"))


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _owner(path: Path) -> str:
    """core or the domain a library file belongs to (packages/<name>/...)."""
    return path.relative_to(ROOT / "packages").parts[0]


def _domain_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "clipsuite" and parts[1] in DOMAINS else None


def test_libraries_carry_no_cli_framework() -> None:
    found = [f"{p.relative_to(ROOT)}: {name}" for p in _library_files() for name in _imports(p)
             if name.split(".")[0] in CLI_FRAMEWORKS]
    assert found == []


def test_no_import_goes_up_or_across() -> None:
    found = []
    for path in _library_files():
        owner = _owner(path)
        for name in _imports(path):
            domain = _domain_of(name)
            if domain is not None and domain != owner:
                found.append(f"{path.relative_to(ROOT)}: {name}")
    assert found == []


def test_methods_do_not_import_their_trainer() -> None:
    found = [f"{p.relative_to(ROOT)}: {name}" for p in ROOT.glob("packages/*/src/clipsuite/*/methods/*.py")
             for name in _imports(p) if name.split(".")[:3] == ["clipsuite", _owner(p), "train"]]
    assert found == []


def _raw_model_lines(path: Path) -> list[int]:
    """Lines of ``<x>.model`` where x is named ``clip`` (a variable, or an attribute such as ``self.clip``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "model":
            base = node.value
            name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
            if name == "clip":
                lines.append(node.lineno)
    return lines


def test_nothing_outside_the_core_reaches_into_clip_model() -> None:
    files = [p for p in [*_library_files(), *ROOT.glob("apps/*/src/**/*.py")] if "packages/core/" not in p.as_posix()]
    assert [f"{path.relative_to(ROOT)}:{line}" for path in files for line in _raw_model_lines(path)] == []


def test_the_guards_catch_what_they_look_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import typer\ndef f(clip, self):\n    from clipsuite.remote.data import x\n"
                      "    return clip.model, self.clip.model, clip.network\n")
    assert "typer" in _imports(sample) and "clipsuite.remote.data" in _imports(sample)
    assert _domain_of("clipsuite.remote.data") == "remote" and _domain_of("clipsuite.core.models") is None
    assert _raw_model_lines(sample) == [4, 4]


# what a command imports before its checks: each must answer a typo without torch or accelerate
TORCH_FREE = ["clipsuite.core.train", "clipsuite.core.outputs", "clipsuite.core.notices", "clipsuite.core.run_config",
              "clipsuite.core.comma_lists", "clipsuite.core.class_names", "clipsuite.core.input_paths",
              "clipsuite.core.lazy_names", "clipsuite.core.contrastive_run", "clipsuite.core.adapt",
              "clipsuite.core.adapt.adapt_run", "clipsuite.core.adapt.results", "clipsuite.anomaly.train_run",
              "clipsuite.anomaly.detect_checks", "clipsuite.brain.fit_run", "clipsuite.generative.train_runs",
              "clipsuite.generative.inference_runs", "clipsuite.generative.prechecks", "clipsuite.medical.vqa_run",
              "clipsuite.medical.biomedcoop_runs",
              "clipsuite.remote.train_run", "clipsuite.remote.prechecks", "clipsuite.remote.flag_values"]


def test_torch_free_modules_stay_torch_free() -> None:
    # one process, imported in turn: the first module that brings torch in is the one named
    code = ("import importlib, sys\n"
            f"for name in {TORCH_FREE!r}:\n"
            "    importlib.import_module(name)\n"
            "    if 'torch' in sys.modules or 'accelerate' in sys.modules:\n"
            "        print(name); break\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"{result.stdout.strip()} imports torch or accelerate"
