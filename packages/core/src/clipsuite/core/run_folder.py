"""Where a training run may write: a new or empty folder, or its own earlier run (resume / overwrite).

Torch-free, so a CLI can refuse a wrong ``--output`` before importing anything heavy. A non-empty folder
that is not a clipsuite run is never written into, with ``overwrite`` either: it may hold anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from clipsuite.core.errors import InputError
from clipsuite.core.outputs import foreign_folder_error

RUN_MARKER = "trainer_state.json"  # what the Trainer writes at its first checkpoint
RUN_CONFIG = "config.json"  # written at the start of a run: {"train": ..., "task": ...}


def is_run_folder(folder: Path) -> bool:
    """A clipsuite training run: checkpointed, or started (its config written) and stopped before that."""
    if (folder / RUN_MARKER).is_file():
        return True
    try:
        config = json.loads((folder / RUN_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "train" in config


def check_output_folder(output_dir: str | os.PathLike[str], resume: bool, overwrite: bool,
                        flag: str = "--output") -> None:
    """One line naming the fix (Python keyword and CLI flag) when ``output_dir`` cannot take this run;
    ``flag``: the command's own flag for the folder (``--output``, ``--run-dir`` ...)."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder", cli=f"{out}: exists and is not a folder; give "
                                                                    f"{flag} a folder")
    is_run = out.is_dir() and is_run_folder(out)
    if (out / RUN_MARKER).is_file() and not (resume or overwrite):
        raise InputError(f"{out}: already holds a training run; pass resume=True to continue it, overwrite=True to "
                         "replace it, or choose another folder",
                         cli=f"{out}: already holds a training run; add --resume to continue it, --overwrite to "
                             f"replace it, or choose another {flag}")
    if out.is_dir() and not is_run and any(out.iterdir()):
        raise foreign_folder_error(out, flag)  # the one refusal of every command (clipsuite.core.outputs)
