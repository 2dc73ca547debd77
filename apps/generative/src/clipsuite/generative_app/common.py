"""What the generative commands share: the device option and loading the CLIP model (after the checks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel

DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ...")]


def load_clip(spec: str, device: str) -> ClipModel:
    from clipsuite.core.models import load_model

    return load_model(spec, device=device)
