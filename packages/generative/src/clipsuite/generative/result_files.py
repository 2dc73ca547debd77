"""What ``tryon`` and ``edit`` write: the result PNG the user named, an HTML grid beside it, and the pictures
the grid shows in ``<stem>_files/`` (a folder of our own, replaced whole on the next run).

``check_result_outputs`` runs before any work (``clipsuite.core.outputs``: a user's file or folder is never
written over); importing this module does not import torch (the writers take tensors and convert them then).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def files_folder(out: Path) -> Path:
    """Where the pictures shown beside ``out`` go."""
    return out.parent / f"{out.stem}_files"


def check_result_outputs(out: Path, flag: str = "--output") -> None:
    """The PNG, the HTML page beside it and the folder of pictures beside that."""
    from clipsuite.core.outputs import check_output_dir, check_output_file

    check_output_file(out, flag, (".png",))
    check_output_file(out.with_suffix(".html"), flag)
    check_output_dir(files_folder(out), flag)


def write_result(out: Path, pictures: Mapping[str, torch.Tensor], result: torch.Tensor, *, command: str,
                 title: str, label: str, result_column: str = "result", notes: Sequence[str] = ()) -> Path:
    """``result`` (``[3, H, W]`` in [-1, 1]) to ``out``; ``pictures`` (name -> the same) into the files folder;
    the page ``title`` with one row ``label``: the pictures, then the result. Returns the page."""
    from clipsuite.core.staging import atomic_write_text, staged_folder
    from clipsuite.generative.data import to_image
    from clipsuite.generative.report import grid_html, save_png

    folder = files_folder(out)
    row = {}
    with staged_folder(folder, command=command, flag="--output") as files:
        for name, tensor in pictures.items():
            png = f"{name.replace(' ', '_')}.png"
            save_png(to_image(tensor), files / png)
            row[name] = f"{folder.name}/{png}"
    save_png(to_image(result), out)
    row[result_column] = out.name
    page = out.with_suffix(".html")
    atomic_write_text(page, grid_html(title, [(label, row)], notes))
    return page

