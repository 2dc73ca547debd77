"""The class names a classification is asked for, read and checked torch-free (a typo, a file of blank lines
or a single class answers before any model loads)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clipsuite.core.comma_lists import parse_list
from clipsuite.core.errors import InputError


def check_class_count(class_names: Sequence[str]) -> None:
    """Classification needs two classes at least: a softmax over one gives it 1.000 for every image."""
    if len(class_names) < 2:
        named = f" ('{class_names[0]}')" if class_names else ""
        raise InputError(f"give at least two classes, got {len(class_names)}{named}: with one class every "
                         "image scores 1.000 by construction (add the alternatives, e.g. 'cat,dog')")


def read_class_names(classes: str | None, classes_file: Path | None) -> list[str] | None:
    """``--classes a,b`` or ``--classes-file`` (one name per line), checked; ``None`` when neither is given."""
    if classes_file is not None:
        if not classes_file.is_file():
            raise InputError(f"{classes_file}: file not found")
        names = [line.strip() for line in classes_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not names:
            raise InputError(f"{classes_file}: no class names in this file")
    elif classes:
        names = parse_list(classes, "--classes", kind="class names", example="cat,dog")
    else:
        return None
    check_class_count(names)
    return names
