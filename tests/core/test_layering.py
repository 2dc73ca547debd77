"""Layering guard: only the core's model and tower modules know open_clip's internals.

Every .py file under packages/ and apps/, except ``core/models.py``, ``core/towers/`` and
``core/backends/``, must not touch a CLIP model's tower internals (``.model.visual``,
``.model.transformer``, ``.model.token_embedding`` ...), import ``open_clip.model`` /
``open_clip.transformer`` / ``open_clip.hf_model``, or use a private name (``._something``) of
open_clip or of ``ClipModel``. Methods ask ``clipsuite.core.towers`` instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import open_clip

from clipsuite.core.models import ClipModel

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = ("packages/core/src/clipsuite/core/models.py", "packages/core/src/clipsuite/core/towers/",
           "packages/core/src/clipsuite/core/backends/")
TOWER_PARTS = {"visual", "transformer", "token_embedding", "text", "positional_embedding", "ln_final",
               "text_projection", "attn_mask"}
INTERNAL_MODULES = ("open_clip.model", "open_clip.transformer", "open_clip.hf_model")
# (file, expression) pairs that only look like a violation, with the reason
EXEMPT: dict[tuple[str, str], str] = {}


def _defined_private_names(files: list[Path]) -> set[str]:
    """Private (single-underscore) names defined in ``files``: functions, classes, ``self._x = ...``."""
    names: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _is_allowed(relative: str) -> bool:
    return any(relative == a or (a.endswith("/") and relative.startswith(a)) for a in ALLOWED)


def _checked_files() -> list[Path]:
    files = sorted([*ROOT.glob("packages/*/src/**/*.py"), *ROOT.glob("apps/*/src/**/*.py")])
    return [f for f in files if not _is_allowed(f.relative_to(ROOT).as_posix())]


def _foreign_private_names(checked: list[Path]) -> set[str]:
    """Private names of open_clip and ClipModel that our checked code does not define itself."""
    open_clip_files = sorted(Path(open_clip.__file__).parent.rglob("*.py"))
    clip_model = {n for n in vars(ClipModel) if n.startswith("_") and not n.startswith("__")}
    return (_defined_private_names(open_clip_files) | clip_model) - _defined_private_names(checked)


def violations(source: str, relative: str, private: set[str]) -> list[str]:
    """What in ``source`` reaches past the towers, as ``file:line: expression`` strings."""
    found = []
    for node in ast.walk(ast.parse(source)):
        problem = None
        if isinstance(node, ast.Attribute):
            text = ast.unparse(node)
            inner = node.value
            tower_part = node.attr in TOWER_PARTS and isinstance(inner, ast.Attribute) and inner.attr == "model"
            internal = any(text.startswith(m + ".") for m in INTERNAL_MODULES)
            problem = text if tower_part or node.attr in private or internal else None
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(INTERNAL_MODULES) or (
                    node.module.startswith("open_clip") and any(a.name.startswith("_") for a in node.names)):
                problem = f"from {node.module} import ..."
        elif isinstance(node, ast.Import):
            problem = next((f"import {a.name}" for a in node.names if a.name.startswith(INTERNAL_MODULES)), None)
        if problem and (relative, problem) not in EXEMPT:
            found.append(f"{relative}:{node.lineno}: {problem}")
    return sorted(set(found))


def test_only_models_and_towers_touch_open_clip_internals() -> None:
    checked = _checked_files()
    assert len(checked) > 50  # the glob found the tree
    private = _foreign_private_names(checked)
    found = [v for path in checked for v in violations(path.read_text(), path.relative_to(ROOT).as_posix(), private)]
    assert not found, "use clipsuite.core.towers instead:\n" + "\n".join(found)


def test_the_guard_catches_each_kind_of_violation() -> None:
    private = _foreign_private_names(_checked_files())
    assert {"_pool", "_embeds", "_batches"} <= private  # open_clip's and ClipModel's own
    source = "\n".join([
        "from open_clip.transformer import text_global_pool",
        "import open_clip.model",
        "blocks = clip.model.visual.transformer.resblocks",
        "width = self.clip.model.token_embedding.weight.shape[1]",
        "pooled, _ = tower._pool(x)",
        "chunks = clip._batches(items, 4)",
        "cfg = open_clip.model.CLIPVisionCfg()",
        "tokens = tower.embed(pixels)  # fine",
    ])
    found = violations(source, "packages/x/src/clipsuite/x/m.py", private)
    assert [f.split(":")[1] for f in found] == ["1", "2", "3", "4", "5", "6", "7"]
