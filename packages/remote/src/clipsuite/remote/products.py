"""The two standard deliveries, recognised as scenes without a pattern to write.

* Sentinel-2 ``.SAFE`` (L1C, L2A): the band files of each granule (``GRANULE/*/IMG_DATA``, L2A's
  ``R10m``/``R20m``/``R60m``: each band at its finest resolution) form a scene. The product metadata
  (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``) gives the quantification value and, since processing
  baseline 04.00, the radiometric offset (``RADIO_ADD_OFFSET`` / ``BOA_ADD_OFFSET``, -1000 DN), used
  instead of ``--s2-offset`` when that flag is not given.
* Landsat Collection 2 (``<product id>_B4.TIF`` ... next to ``<product id>_MTL.txt``): the band files are
  grouped by ``band_files`` as any band set; the MTL's reflectance rescaling (Level-1 TOA reflectance,
  or Level-2 surface reflectance for ``_SR_B*`` files) becomes the scene's DN scaling when the bands
  share it and ``--scale`` is not given.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from clipsuite.core.errors import InputError

if TYPE_CHECKING:
    from clipsuite.remote.sources import SceneSource

S2_METADATA = ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml")


def is_safe(path: Path) -> bool:
    return path.name.upper().endswith(".SAFE") or any((path / name).is_file() for name in S2_METADATA)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def s2_scaling(safe: Path) -> tuple[float | None, float | None, str]:
    """``(scale, offset, origin)`` from a SAFE's product metadata; ``(None, None, "")`` without it."""
    meta = next((safe / name for name in S2_METADATA if (safe / name).is_file()), None)
    if meta is None:
        return None, None, ""
    try:
        root = ET.parse(meta).getroot()
    except ET.ParseError as error:
        raise InputError(f"{meta}: not readable product metadata (XML: {error})") from None
    offsets, quantification, baseline = set(), None, None
    for element in root.iter():
        name, text = _local(element.tag), (element.text or "").strip()
        if name in ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET") and text:
            offsets.add(float(text))
        elif name in ("QUANTIFICATION_VALUE", "BOA_QUANTIFICATION_VALUE") and text:
            quantification = float(text)
        elif name == "PROCESSING_BASELINE" and text:
            baseline = text
    if len(offsets) > 1:  # never seen: one offset per band, all -1000 since 04.00
        raise InputError(f"{meta}: band offsets differ ({sorted(offsets)}); per-band offsets are not supported")
    offset = offsets.pop() if offsets else 0.0
    scale = 1.0 / quantification if quantification else None
    origin = f"{meta.name}: baseline {baseline or '?'}, offset {offset:g} DN" + (
        f", quantification {quantification:g}" if quantification else "")
    return scale, offset, origin


def safe_scenes(safe: Path) -> list[SceneSource]:
    """One scene per granule of a ``.SAFE`` folder; refuses a folder without granule band files."""
    from clipsuite.remote.sources import RASTER_SUFFIXES, group_band_files

    granules = sorted(p for p in (safe / "GRANULE").glob("*") if (p / "IMG_DATA").is_dir())
    found: list[tuple[Path, SceneSource]] = []
    for granule in granules:
        files = sorted(p for p in (granule / "IMG_DATA").rglob("*") if p.suffix.lower() in RASTER_SUFFIXES)
        band_sets, _ = group_band_files(files)
        if len(band_sets) > 1:
            raise InputError(f"{granule}: band files of {len(band_sets)} different tiles in one granule")
        found.extend((granule, s) for s in band_sets)
    if not found:
        raise InputError(f"{safe}: a .SAFE folder without granules holding band files (GRANULE/*/IMG_DATA)")
    scale, offset, origin = s2_scaling(safe)
    return [replace(s, label=str(safe) if len(found) == 1 else str(granule), kind="safe", scale=scale,
                    offset=offset, origin=origin) for granule, s in found]


def _mtl_groups(path: Path) -> dict[str, dict[str, str]]:
    """``{group: {key: value}}`` of a Landsat MTL (``.txt`` ODL or ``.xml``)."""
    groups: dict[str, dict[str, str]] = {}
    if path.suffix.lower() == ".xml":
        for parent in ET.parse(path).getroot().iter():
            for child in parent:
                if len(child) == 0 and child.text is not None:
                    groups.setdefault(_local(parent.tag), {})[_local(child.tag)] = child.text.strip()
        return groups
    group = ""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "GROUP":
            group = value
        elif value:
            groups.setdefault(group, {})[key] = value.strip('"')
    return groups


def landsat_scaling(mtl: Path, bands: list[str], surface: bool) -> tuple[float | None, float | None]:
    """Reflectance ``mult`` and ``add`` shared by ``bands`` (``B04`` ...), as ``(scale, offset in DN)``."""
    groups = _mtl_groups(mtl)
    wanted = ("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS",) if surface else (
        "LEVEL1_RADIOMETRIC_RESCALING", "RADIOMETRIC_RESCALING")
    values = next((groups[g] for g in wanted if g in groups), {})
    pairs: set[tuple[float, float]] = set()
    for band in bands:
        number = int(re.sub(r"\D", "", band) or 0)
        mult_text = values.get(f"REFLECTANCE_MULT_BAND_{number}")
        add_text = values.get(f"REFLECTANCE_ADD_BAND_{number}")
        if mult_text is not None and add_text is not None:
            pairs.add((float(mult_text), float(add_text)))
    if len(pairs) != 1:  # thermal-only sets, or bands scaled differently: DN scaling by dtype
        return None, None
    mult, add = pairs.pop()
    return mult, add / mult


def with_landsat_metadata(scene: SceneSource) -> SceneSource:
    """A band set next to ``<product id>_MTL.txt``/``.xml`` becomes a Landsat scene with the MTL's scaling."""
    candidates = (Path(f"{scene.label}_MTL{ext}") for ext in (".txt", ".xml"))
    mtl = next((path for path in candidates if path.is_file()), None)
    if mtl is None:
        return scene
    surface = any("_SR_B" in Path(b.path).name.upper() for b in scene.bands)
    reflective = [b.name for b in scene.bands if not Path(b.path).name.upper().count("_ST_B")]
    scale, offset = landsat_scaling(mtl, reflective, surface)
    origin = f"{mtl.name}: {'surface' if surface else 'TOA'} reflectance = DN x {scale:g} + {scale * offset:g}" \
        if scale is not None and offset is not None else f"{mtl.name}"
    return replace(scene, kind="landsat", scale=scale, offset=offset, origin=origin)
