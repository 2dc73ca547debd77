"""What a generative command's values must be, checked without torch: the working size, the diffusion parts,
a training folder's layout, the images a mapper learns from, the CLIP weights offline.

The run configs (``train_runs``, ``inference_runs``) call these in their checks, so a typo answers in one
``InputError`` line before anything heavy is imported; the torch side (``components``, ``data``) reads
the same values again when it builds.
"""

from __future__ import annotations

from pathlib import Path

from clipsuite.core.errors import InputError
from clipsuite.generative.names import PART_PRESETS, PART_SIZES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
CLIP_OFFLINE = "--clip tiny-transformers"  # the built-in CLIP a message offers for trying a command offline


def parse_size(text: str, flag: str = "--size") -> tuple[int, int]:
    """``HxW`` (multiples of 8, the latent grid's) -> ``(H, W)``."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"{flag} '{text}': expected HxW, e.g. 512x384") from None
    if h < 8 or w < 8 or h % 8 or w % 8:
        raise InputError(f"{flag} '{text}': both sides must be multiples of 8, at least 8")
    return h, w


def check_parts(spec: str) -> None:
    """A parts size, a parts preset or a diffusers folder (what ``tryon.diffusion_parts`` builds from)."""
    if spec not in PART_SIZES and spec not in PART_PRESETS and not Path(spec).is_dir():
        raise InputError(f"--parts '{spec}': not a preset ({', '.join(PART_PRESETS)}), a size "
                         f"({', '.join(PART_SIZES)}) nor a folder")


def note_random_parts(spec: str) -> None:
    """A command that paints with seeded random parts says so once (its pictures are noise; the page says so too)."""
    if spec in PART_SIZES:
        from clipsuite.core.notices import note_random_weights

        note_random_weights(f"the '{spec}' diffusion parts (--parts)")


def check_clip_weights(spec: str) -> None:
    """An uncached ``--clip`` offline (ladi-vton-clip, an hf-hub: repo): one line from the Hugging Face cache,
    in the command's words (``--clip``, never a ``--model`` it does not have)."""
    from clipsuite.core.weights_precheck import check_weights

    check_weights(spec, None, CLIP_OFFLINE, cli_fix="--clip DIR (a transformers CLIP folder)")


def check_file(path: str | Path | None, what: str) -> None:
    if path is not None and not Path(path).is_file():
        raise InputError(f"{path}: {what} not found")


def dataset_layout(root: str | Path, category: str) -> str:
    """``vitonhd`` (``ROOT/train``) or ``dresscode`` (``ROOT/{category}``)."""
    root = Path(root)
    if (root / "train").is_dir():
        return "vitonhd"
    if (root / category).is_dir():
        return "dresscode"
    raise InputError(f"{root}: neither a VITON-HD root (train/) nor a Dress Code root with a {category}/ folder")


def image_files(folder: str | Path, at_least: int = 2) -> list[Path]:
    """The pictures directly in ``folder`` (sorted), refused when fewer than ``at_least``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(paths) < at_least:
        raise InputError(f"{folder}: needs at least {at_least} images (found {len(paths)})")
    return paths
