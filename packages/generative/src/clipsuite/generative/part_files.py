"""Stage files (one trained part each, safetensors + config): read by training and by inference alike.

Kept apart from ``train`` so that inference (``tryon``, ``edit``) and the methods never import the
trainer: data flows method -> trainer, not back.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from torch import nn

from clipsuite.core.checkpoints import load_tensors, read_config
from clipsuite.core.errors import ModelError
from clipsuite.core.fingerprint import check_same_backbone

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel

M = TypeVar("M", bound=nn.Module)


def clip_identity(clip: ClipModel) -> dict[str, str]:
    """What a stage trained on ``clip``'s features records about it (``ClipModel.identity``, as ``clip*``)."""
    return {key.replace("model", "clip", 1): value for key, value in clip.identity().items()}


def check_clip(part_file: str | Path, clip: ClipModel) -> None:
    """Refuse, in one line, a stage file trained with another CLIP model than ``clip`` (same widths, other
    weights: its features would mean other things); files written before this was recorded are not checked."""
    check_same_backbone(part_file, read_config(part_file) or {}, clip, prefix="clip", flag="--clip")


def load_part(module: M, part_file: str | Path, stage: str) -> M:
    """Load a saved stage into ``module``; refuses a file of another stage or shape, naming it."""
    config = read_config(part_file) or {}
    if config.get("stage") != stage:
        raise ModelError(f"{part_file}: holds stage '{config.get('stage')}', expected '{stage}'")
    state = load_tensors(part_file)
    own = module.state_dict()
    bad = [k for k in own if k not in state or state[k].shape != own[k].shape]
    if bad or set(state) - set(own):
        example = (bad or sorted(set(state) - set(own)))[0]
        raise ModelError(f"{part_file}: does not fit this {stage} model (e.g. {example})")
    module.load_state_dict(state)
    return module
