"""Parsing of the reading flags that several remote commands share (--bands, --stretch); torch-free."""

from __future__ import annotations

from clipsuite.cli.common import fail, parse_list


def parse_bands(text: str | None, allow_all: bool = False) -> list[int | str] | None:
    """'B04,B03,B02' or '4,3,2' -> names and 1-based indices; 'all' (training only) keeps every band."""
    if text is None:
        return None
    parts = parse_list(text, "--bands", kind="bands", example="B04,B03,B02 or 4,3,2")
    if allow_all and [p.lower() for p in parts] == ["all"]:
        return ["all"]
    return [int(p) if p.isdigit() else p for p in parts]


def parse_stretch(text: str) -> tuple[float, float] | None:
    """'LOW,HIGH' percentiles (0 <= LOW < HIGH <= 100), or 'none'."""
    if text.lower() == "none":
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        fail(f"--stretch '{text}': give two percentiles 'LOW,HIGH' (e.g. 2,98) or 'none'")
    if not 0 <= low < high <= 100:
        fail(f"--stretch '{text}': need 0 <= LOW < HIGH <= 100")
    return low, high
