"""Fill: pixels that hold no measurement (the collar around a rotated Landsat footprint, the edge of a
Sentinel-2 tile), whether or not the file says so.

* ``--nodata VALUE`` (``Fill(value=...)``) overrides the file's nodata for a whole run: a pixel equal to it in
  any chosen band is fill (as a nodata tag is read).
* Otherwise the file's nodata value, internal masks and NaN are fill, as before; and for integer products
  *without* a nodata tag or mask (Landsat Level-1, Sentinel-2 JP2), a pixel that is 0 in every chosen band
  is fill: both missions use 0 as fill, and no real reflectance is 0 in every band at once.
* A tile whose valid pixels hold one constant value in every band is never indexed as data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.enums import MaskFlags

from clipsuite.core.errors import InputError


@dataclass(frozen=True)
class Fill:
    """``value``: a nodata value overriding the file's; ``zero``: the 0-in-every-band rule for integer
    products without a nodata tag (on by default)."""

    value: float | None = None
    zero: bool = True

    def __post_init__(self) -> None:
        if self.value is not None and not isinstance(self.value, (int, float)):
            raise InputError(f"nodata {self.value!r}: not a number")


def parse_nodata(text: str | float | None, flag: str = "--nodata") -> float | None:
    """A ``--nodata`` value: a number (``0``, ``-9999``, ``nan``); refuses anything else in one line."""
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{flag} '{text}': not a number (e.g. 0, -9999 or nan)") from None
    if math.isinf(value):
        raise InputError(f"{flag} '{text}': not a finite number")
    return value


def zero_rule_applies(dataset: Any, indexes: list[int] | tuple[int, ...], fill: Fill) -> bool:
    """Integer bands without a nodata tag or mask, and no ``--nodata``: 0 in every band is fill."""
    if not fill.zero or fill.value is not None:
        return False
    if not all(np.issubdtype(np.dtype(dataset.dtypes[i - 1]), np.integer) for i in indexes):
        return False
    flags = dataset.mask_flag_enums
    return all(dataset.nodatavals[i - 1] is None and list(flags[i - 1]) == [MaskFlags.all_valid] for i in indexes)


def describe_rule(dataset: Any, indexes: list[int] | tuple[int, ...], fill: Fill) -> str:
    """How fill was recognised in a scene, in the words of the line printed per scene."""
    if fill.value is not None:
        return f"--nodata {fill.value:g}"
    if zero_rule_applies(dataset, indexes, fill):
        return "no nodata tag: 0 in every band"
    tags = {dataset.nodatavals[i - 1] for i in indexes} - {None}
    if tags:
        return f"nodata {', '.join(f'{t:g}' for t in sorted(tags))} from the file"
    flags = dataset.mask_flag_enums
    if any(list(flags[i - 1]) != [MaskFlags.all_valid] for i in indexes):
        return "the file's mask"
    return "NaN" if np.issubdtype(np.dtype(dataset.dtypes[indexes[0] - 1]), np.floating) else "none marked"


def is_constant(values: np.ndarray, valid: np.ndarray) -> bool:
    """True when the valid pixels of ``values`` ``[C, H, W]`` hold one value per band (no picture)."""
    pixels = values[:, valid]
    if pixels.shape[1] == 0:
        return True
    return bool((pixels.max(axis=1) == pixels.min(axis=1)).all())
