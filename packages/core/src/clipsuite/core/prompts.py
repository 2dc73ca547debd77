"""Prompt templates, template files and LLM description files (CuPL / descriptor JSON).

A template holds ``{}`` where the class name goes. Description files map each class to sentences
written by a language model (``{"class": ["sentence", ...]}``), the format CuPL and BiomedCoOp use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

from clipsuite.core.checkpoints import read_json
from clipsuite.core.errors import InputError


def _as_format_strings(templates: Sequence[object]) -> list[str]:
    """open_clip keeps templates as lambdas; we keep them as '{}' strings, which files can hold too."""
    return [t("{}") if callable(t) else str(t) for t in templates]


TEMPLATE_SETS: dict[str, list[str]] = {
    "photo": ["a photo of a {}."],
    "plain": ["{}"],
    "simple": _as_format_strings(SIMPLE_IMAGENET_TEMPLATES),
    "openai": _as_format_strings(OPENAI_IMAGENET_TEMPLATES),
}


def resolve_templates(spec: str | Sequence[str] | None) -> list[str]:
    """A template-set name, a text file (one template per line) or a list of templates."""
    if spec is None:
        return list(TEMPLATE_SETS["photo"])
    if not isinstance(spec, str):
        templates = [str(t) for t in spec]
    elif spec in TEMPLATE_SETS:
        templates = list(TEMPLATE_SETS[spec])
    elif Path(spec).is_file():
        templates = [line.strip() for line in Path(spec).read_text(encoding="utf-8").splitlines() if line.strip()]
        if not templates:
            raise InputError(f"{spec}: template file is empty")
    elif "{}" in spec:
        templates = [spec]
    else:
        raise InputError(f"templates '{spec}': not a template set ({', '.join(TEMPLATE_SETS)}), a file, "
                         "or a template containing '{}'")
    for template in templates:
        if "{}" not in template:
            raise InputError(f"template '{template}' has no '{{}}' for the class name")
    return templates


def fill(templates: Sequence[str], class_name: str) -> list[str]:
    return [t.replace("{}", class_name) for t in templates]


def load_descriptions(path: str | os.PathLike[str], class_names: Sequence[str] | None = None,
                      ) -> dict[str, list[str]]:
    """Read a class -> sentences JSON; every asked class must be present with at least one sentence."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object mapping class names to lists of sentences")
    descriptions: dict[str, list[str]] = {}
    for name, sentences in data.items():
        if isinstance(sentences, str):
            sentences = [sentences]
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            raise InputError(f"{path}: entry '{name}' must be a list of sentences")
        cleaned = [s.strip() for s in sentences if s.strip()]
        if not cleaned:
            raise InputError(f"{path}: entry '{name}' has no sentences")
        descriptions[name] = cleaned
    if class_names is not None:
        missing = [c for c in class_names if c not in descriptions]
        if missing:
            raise InputError(f"{path}: no sentences for class '{missing[0]}'"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        descriptions = {c: descriptions[c] for c in class_names}
    return descriptions


def descriptor_prompts(class_name: str, descriptors: Sequence[str]) -> list[str]:
    """'Visual Classification via Description from LLMs': '{class}, which has {descriptor}'."""
    return [f"{class_name}, which {d}" if d.split(" ", 1)[0] in ("is", "has", "have", "are") else
            f"{class_name}, which has {d}" for d in descriptors]
