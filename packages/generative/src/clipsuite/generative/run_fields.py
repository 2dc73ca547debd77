"""The options the generative run configs share (``train_runs``, ``inference_runs``), each field's flag and help
written once: the CLIP model, the diffusion parts, the working size, the schedule's length. Torch-free."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from clipsuite.core.run_config import cli
from clipsuite.generative.names import PART_PRESETS, PART_SIZES

DEFAULT_CLIP = "tiny-transformers"


def clip_field() -> Any:
    return field(default=DEFAULT_CLIP, metadata=cli(
        "CLIP model on the transformers backend: a transformers CLIP folder, or tiny-transformers (offline).",
        "--clip"))


def parts_field(path: bool = False) -> Any:
    """``path``: stored absolute when it names a folder here (a training run, resumed from elsewhere)."""
    return field(default="micro", metadata=cli(
        f"Diffusion parts: {', '.join(PART_PRESETS)} (published weights, from the Hugging Face cache), "
        f"{', '.join(PART_SIZES)} (seeded random weights) or a local diffusers pipeline folder.", "--parts",
        path=path))


def size_field(default: str) -> Any:
    return field(default=default, metadata=cli("Working size HxW (multiples of 8), e.g. 512x384."))


def steps_field(default: int, help: str) -> Any:
    return field(default=default, metadata=cli(help))
