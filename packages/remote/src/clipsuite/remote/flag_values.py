"""The typed text of the remote commands' shared reading flags (--bands, --stretch, --languages), parsed once,
torch- and rasterio-free: a run config names these as its fields' ``parse`` (``clipsuite.core.run_config.cli``),
and the commands without one call them directly. Each refuses in one line naming its flag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipsuite.core.comma_lists import parse_list
from clipsuite.core.errors import InputError

if TYPE_CHECKING:  # rasterio is not imported to read a flag: the CLIs import this module as they start
    from clipsuite.remote.rasters import BandRef

ALL_BANDS = "all"  # training only: every band of the rasters


def parse_languages(text: str, flag: str = "--languages") -> tuple[str, ...]:
    return tuple(parse_list(text, flag, kind="languages", example="en,zh,ru"))


def parse_bands(text: str | None, allow_all: bool = False, flag: str = "--bands") -> list[BandRef] | None:
    """'B04,B03,B02' or '4,3,2' -> names and 1-based indices; 'all' (``allow_all``: training) keeps every band."""
    if text is None:
        return None
    parts = parse_list(text, flag, kind="bands", example="B04,B03,B02 or 4,3,2")
    if allow_all and [p.lower() for p in parts] == ["all"]:
        return [ALL_BANDS]
    return [int(p) if p.isdigit() else p for p in parts]


def parse_training_bands(text: str) -> list[BandRef] | None:
    """``--bands`` of ``train``: a selection, or ``all``."""
    return parse_bands(text, allow_all=True)


def parse_stretch(text: str, flag: str = "--stretch") -> tuple[float, float] | None:
    """'LOW,HIGH' percentiles (0 <= LOW < HIGH <= 100), or 'none' (no stretch)."""
    if text.strip().lower() == "none":
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{flag} '{text}': give two percentiles 'LOW,HIGH' (e.g. 2,98) or 'none'") from None
    check_stretch((low, high), f"{flag} '{text}'")
    return low, high


def check_stretch(stretch: tuple[float, float] | None, what: str = "stretch") -> None:
    """Percentiles a stretch can use: ``0 <= LOW < HIGH <= 100`` (``None``: no stretch)."""
    if stretch is not None and not 0 <= stretch[0] < stretch[1] <= 100:
        raise InputError(f"{what}: need 0 <= LOW < HIGH <= 100")
