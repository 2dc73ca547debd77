"""``clipsuite-brain nsd``: check a subject of a Natural Scenes Dataset download and write its dataset config.

The config (``{"format": "nsd", "root": ..., "subject": 1, ...}``) is what fit, decode, evaluate and encode
take; the tree is read as the release lays it out (``clipsuite.brain.nsd_layout``). Everything here is a
header read (scipy, h5py, nibabel): torch is never imported, and bad input writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clipsuite.cli.common import cli_errors, console, fail, need

if TYPE_CHECKING:
    from clipsuite.brain.config import DatasetConfig


def check_captions(config: DatasetConfig) -> None:
    """The commands embed every stimulus's text too (the decoders' text space): an NSD config needs captions."""
    if config.nsd is not None and not config.nsd.captions:
        fail(f"{config.path}: an NSD config needs 'captions' (COCO's captions_train2017.json and "
             "captions_val2017.json) for the text embeddings; write it with `clipsuite-brain nsd --captions ...`")


def nsd(
    root: Annotated[Path, typer.Option("--root", help="The NSD download's folder (holds nsddata/, nsddata_betas/, "
                                                      "nsddata_stimuli/).")],
    subject: Annotated[int, typer.Option("--subject", help="Subject 1-8.", min=1, max=8)],
    space: Annotated[str, typer.Option(help="Volume space of the betas and ROI.")] = "func1pt8mm",
    roi: Annotated[str, typer.Option(help="ROI file name under nsddata/ppdata/subjNN/<space>/roi/ (voxels > 0).")]
    = "nsdgeneral",
    sessions: Annotated[str, typer.Option(help="Sessions to read: 1-37, 1,3,5-7 or all (those found on "
                                               "disk).")] = "all",
    captions: Annotated[list[Path] | None, typer.Option("--captions", help="COCO captions JSON; repeat for train "
                                                                           "and val.")] = None,
    glm: Annotated[str, typer.Option(help="Betas version folder.")] = "betas_fithrf_GLMdenoise_RR",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Config to write (default "
                                                                       "nsd_subjNN.json).")] = None,
) -> None:
    """Check an NSD subject (design, sessions on disk, ROI, betas headers, stimulus brick, captions) and write its
    dataset config for fit / decode / evaluate / encode."""
    from clipsuite.brain.nsd_layout import parse_sessions, read_nsd_config, session_text
    from clipsuite.core.outputs import check_output_file
    from clipsuite.core.staging import atomic_write_json

    out = output if output is not None else Path(f"nsd_subj{subject:02d}.json")
    check_output_file(out, "--output", suffixes=(".json",))
    need(root, "--root, the NSD download", "dir")
    parse_sessions(sessions, "--sessions")
    for path in captions or []:
        need(path, "--captions", "file")
    raw = {"format": "nsd", "root": str(root.resolve()), "subject": subject, "space": space, "roi": roi,
           "glm": glm, "sessions": sessions, "captions": [str(p.resolve()) for p in captions or []]}
    source = read_nsd_config(out.resolve(), raw)
    raw["sessions"] = session_text(source.sessions)  # explicit: sessions downloaded later change nothing
    if not raw["captions"]:
        del raw["captions"]
    atomic_write_json(out, raw)
    test = len(set(source.images) & source.shared)
    console.print(f"subject {subject} ({space}, {roi}): sessions {raw['sessions']} of {session_text(source.available)} "
                  f"on disk, {len(source.images)} trials, {len(set(source.images))} images ({test} shared = test)"
                  f"{', captions from ' + str(len(source.captions)) + ' COCO file(s)' if source.captions else ''}")
    if not source.captions:
        console.print("no --captions: fit / decode / evaluate / encode need them for the text embeddings")
    console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("nsd")(cli_errors(nsd))
