"""What a detection request may combine, checked torch-free so a command answers before loading a model.

Reference images and a shot count go together (the shots are drawn from the references); a threshold is
either given or chosen on labelled validation images, not both. What a *method* needs (references required
or unused, a weights file) is read from its class, which imports torch: ``Detector`` checks that.
"""

from __future__ import annotations

import os

from clipsuite.core.errors import InputError


def check_detect_request(shots: int, reference: str | os.PathLike[str] | None, threshold: float | None,
                         validation: str | os.PathLike[str] | None) -> None:
    """One ``InputError`` (in the CLI's flag words for a command-line user) for a combination that cannot run."""
    if shots and reference is None:
        raise InputError(f"shots={shots} needs reference images (the normal images the shots are drawn from)",
                         cli=f"--shots {shots} needs --reference DIR (the normal images the shots are drawn from)")
    if threshold is not None and validation is not None:
        raise InputError("give either a threshold or validation images to choose one, not both",
                         cli="give either --threshold or --validation, not both")
