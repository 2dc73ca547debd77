"""STAC items as scenes (pystac): a local Item JSON, an ItemCollection, or a folder of them.

Each raster data asset is a band file (hrefs resolved against the item: local paths, or URLs GDAL opens
through ``/vsicurl/`` where there is network). Bands are named as STAC users choose them (odc-stac /
stackstac): by the ``eo:bands`` name (``B04``) or common name (``red``), else by the asset key, so
``--bands red,green,blue``, ``--bands B04,B03,B02`` and ``--bands nir`` all work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pystac

from clipsuite.core.errors import InputError
from clipsuite.remote.band_files import band_sort_key, canonical_band
from clipsuite.remote.sources import RASTER_SUFFIXES, BandFile, SceneSource

RASTER_TYPES = ("image/tiff", "image/jp2", "image/vnd.stac.geotiff", "application/x-hdf")
NOT_DATA = {"thumbnail", "overview", "metadata", "visual"}
COMMON = {"coastal", "blue", "green", "red", "yellow", "pan", "rededge", "nir", "nir08", "nir09", "cirrus", "swir16",
          "swir22", "lwir", "lwir11", "lwir12"}
MAX_JSON_BYTES = 64 * 2**20


def looks_like_stac(path: Path) -> bool:
    """A JSON file holding a STAC Item or an ItemCollection (other JSON in a scene folder is left alone)."""
    if path.stat().st_size > MAX_JSON_BYTES:
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    if not isinstance(data, dict):
        return False
    if data.get("type") == "Feature":
        return "stac_version" in data
    features = data.get("features")
    return data.get("type") == "FeatureCollection" and isinstance(features, list) and any(
        isinstance(f, dict) and "stac_version" in f for f in features)


def _is_raster(key: str, asset: pystac.Asset) -> bool:
    roles = set(asset.roles or [])
    if roles & NOT_DATA and "data" not in roles:
        return False
    media = (asset.media_type or "").split(";")[0].strip().lower()
    return media in RASTER_TYPES or Path(asset.href.split("?")[0]).suffix.lower() in RASTER_SUFFIXES


def _band_entries(item: pystac.Item, asset: pystac.Asset) -> list[dict[str, Any]]:
    fields = asset.extra_fields
    entries = fields.get("eo:bands") or fields.get("bands") or []
    table = item.properties.get("eo:bands") or []
    out = []
    for entry in entries:
        if isinstance(entry, int) and 0 <= entry < len(table):  # STAC 0.9: indexes into the item's list
            entry = table[entry]
        out.append(entry if isinstance(entry, dict) else {})
    return out


def _item_bands(item: pystac.Item, label: str) -> tuple[BandFile, ...]:
    bands: dict[str, BandFile] = {}
    ordered = sorted(item.assets.items(), key=lambda kv: (kv[1].media_type or "").startswith("image/jp2"))
    for key, asset in ordered:  # a band shipped as COG and JP2 (earth-search): the COG is read
        if not _is_raster(key, asset):
            continue
        href = asset.get_absolute_href() or asset.href
        local = not href.startswith(("http://", "https://", "s3://", "gs://", "/vsi"))
        if local and not Path(href).is_file():
            raise InputError(f"{label}: asset '{key}' file not found: {href}")
        entries = _band_entries(item, asset) or [{}]
        for index, entry in enumerate(entries, start=1):
            common = entry.get("common_name") or entry.get("eo:common_name")
            if common is None and len(entries) == 1 and key.lower() in COMMON:
                common = key.lower()
            name = canonical_band(str(entry.get("name") or (key if len(entries) == 1 else f"{key}_{index}")))
            bands.setdefault(name, BandFile(name, href, index, common.lower() if common else None))
    if not bands:
        raise InputError(f"{label}: the STAC item has no raster data assets")
    return tuple(bands[n] for n in sorted(bands, key=band_sort_key))


def stac_scenes(path: Path) -> list[SceneSource]:
    """One scene per item of a STAC Item JSON or an ItemCollection."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not readable JSON ({error})") from None
    try:
        if isinstance(data, dict) and data.get("type") == "FeatureCollection":
            items = list(pystac.ItemCollection.from_dict(data, preserve_dict=False))
            for item in items:
                item.set_self_href(str(path.resolve()))  # relative asset hrefs are relative to the file
            labels = [f"{path}#{item.id}" for item in items]
        else:
            items = [pystac.Item.from_file(str(path))]
            labels = [str(path)]
    except (pystac.STACError, KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: not a STAC Item or ItemCollection ({str(error)[:160]})") from None
    if not items:
        raise InputError(f"{path}: the ItemCollection holds no items")
    return [SceneSource(label, "stac", _item_bands(item, label)) for item, label in zip(items, labels)]
