"""How a trained model reads rasters, as its training run recorded it, and the index settings that follow.

``clipsuite-remote train`` stores ``remote_input`` in the saved model's ``open_clip_config.json``: the
bands, DN scaling, Sentinel-2 offset and stretch the chips were read with (multispectral runs), and the
chips' side in pixels (every run). ``clipsuite-remote index --model RUN`` takes those as its defaults, so
tiles look like the training chips; a flag given explicitly wins, with a one-line note, except bands
that select other bands than the model learnt, which are refused. No torch here: the CLI checks this
before loading anything heavy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipsuite.core.errors import InputError
from clipsuite.remote.rasters import BandRef, resolve_bands

MODEL_CONFIG = "open_clip_config.json"  # what ClipModel.save writes (the core's CONFIG_FILE)
NOT_GIVEN: Any = object()               # a flag left at its default
DEFAULT_TILE = 224
DEFAULT_STRETCH = (2.0, 98.0)
FLAGS = {"bands": "--bands", "scale": "--scale", "offset": "--s2-offset", "stretch": "--stretch",
         "tile_size": "--tile-size", "stretch_scope": "--stretch-scope", "nodata": "--nodata"}


def trained_reading(model: str) -> dict[str, Any] | None:
    """The ``remote_input`` a clipsuite-remote training run saved with ``model`` (a folder), else None."""
    config = Path(model) / MODEL_CONFIG
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{config}: not a readable model config (JSON)") from None
    recorded = data.get("remote_input") if isinstance(data, dict) else None
    return recorded if isinstance(recorded, dict) else None


def model_bands(model: str) -> int:
    """How many bands the image tower of ``model`` takes: a saved model folder's ``in_chans``, else 3."""
    config = Path(model) / MODEL_CONFIG
    if not config.is_file():
        return 3
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        return int(data["model_cfg"]["vision_cfg"].get("in_chans", 3))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{config}: not a readable model config (JSON)") from None
    except (KeyError, TypeError, ValueError, AttributeError):
        return 3


def check_rgb_model(model: str, bands: int, command: str) -> None:
    """Refuse, in one line, a model of ``bands`` bands (a multispectral training run) for a command that
    reads RGB pictures (PNG, JPEG: three channels)."""
    if bands != 3:
        raise InputError(f"{model}: its image tower takes {bands} bands (trained on multispectral rasters), "
                         f"and {command} reads RGB images; use it with `clipsuite-remote index` on rasters")


@dataclass
class Reading:
    """Index reading settings: ``bands`` (None: the first three), ``scale`` (None: by dtype), ``offset``
    (DN added before scaling), ``stretch`` (None: no stretch), ``tile_size``; ``notes`` for the user."""

    bands: list[BandRef] | None = None
    scale: float | None = None
    offset: float = 0.0
    stretch: tuple[float, float] | None = DEFAULT_STRETCH
    tile_size: int = DEFAULT_TILE
    notes: list[str] = field(default_factory=list)
    from_model: bool = False
    stretch_scope: str = "scene"  # scene: one mapping per scene; tile: per tile, as training chips
    chips: str = ""  # how the run's chips were coloured: "raster" (stretched per chip) or "rgb" (8-bit pictures)
    nodata: float | None = None  # --nodata (fill.Fill)


def describe(reading: Reading) -> str:
    """One line: the settings in flag words, and how the tiles' colour mapping compares with the chips'."""
    scope = f" per {reading.stretch_scope}" if reading.stretch is not None else ""
    text = (f"bands {_text(reading.bands or [1, 2, 3])}, scale {_text(reading.scale or 'by dtype')}, offset "
            f"{reading.offset:g} DN, stretch {_text(reading.stretch)}{scope}, tiles of {reading.tile_size} px")
    if reading.chips == "raster" and reading.stretch is not None and reading.stretch_scope == "tile":
        text += " (each tile stretched on its own, as each training chip was)"
    elif reading.chips == "raster" and reading.stretch is not None:
        text += (" (differs from training: each chip was stretched on its own, here one stretch per scene; "
                 "--stretch-scope tile reads as trained)")
    elif reading.chips == "rgb" and reading.stretch is not None:
        text += (f" (differs from training: its chips were 8-bit RGB pictures used as they are, here DN are "
                 f"stretched {_text(reading.stretch)} per {reading.stretch_scope})")
    return text


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _first_scene(scenes: Sequence[Path]) -> object | None:
    """The first scene (a raster file, or a band set, .SAFE or STAC item) among ``scenes``."""
    from clipsuite.remote.sources import find_scene_sources

    try:
        return find_scene_sources(scenes)[0]
    except InputError:  # nothing to look at: the caller compares the selections as written
        return None


def _same_bands(recorded: list[BandRef] | None, given: list[BandRef], scenes: Sequence[Path]) -> bool:
    """Whether two band selections pick the same bands of the scenes (names vs indexes compared on the
    first raster; as written when there is none to look at)."""
    from clipsuite.remote.sources import SceneSource, open_scene

    first = _first_scene(scenes)
    if first is None:
        return [str(b).upper() for b in recorded or []] == [str(b).upper() for b in given]
    assert isinstance(first, SceneSource)
    if first.is_band_set:  # band names of the set, in the set's order
        return first.chosen(recorded) == first.chosen(given)
    with open_scene(first) as dataset:
        return resolve_bands(dataset, recorded, str(first)) == resolve_bands(dataset, given, str(first))


def index_reading(model: str, scenes: Sequence[Path], bands: Any = NOT_GIVEN, scale: Any = NOT_GIVEN,
                  offset: Any = NOT_GIVEN, stretch: Any = NOT_GIVEN, tile_size: Any = NOT_GIVEN,
                  stretch_scope: Any = NOT_GIVEN, nodata: Any = NOT_GIVEN) -> Reading:
    """Settings for indexing ``scenes`` with ``model``: flags given explicitly, else what the model's
    training run recorded, else the defaults. Refuses bands other than the model was trained on."""
    recorded = trained_reading(model)
    given = {"bands": bands, "scale": scale, "offset": offset, "stretch": stretch, "tile_size": tile_size,
             "nodata": nodata}
    defaults: dict[str, Any] = {"bands": None, "scale": None, "offset": 0.0, "stretch": DEFAULT_STRETCH,
                                "tile_size": DEFAULT_TILE, "nodata": None}
    out = {k: (v if v is not NOT_GIVEN else defaults[k]) for k, v in given.items()}
    reading = Reading(**out)
    if stretch_scope is not NOT_GIVEN:
        reading.stretch_scope = stretch_scope
    if recorded is None:
        return reading
    reading.from_model = True
    learnt: dict[str, Any] = {"bands": recorded.get("bands"), "scale": recorded.get("scale"),
              "offset": float(recorded.get("offset") or 0.0),
              "stretch": tuple(recorded["stretch"]) if recorded.get("stretch") else None,
              "tile_size": recorded.get("tile_size"), "nodata": recorded.get("nodata")}
    raster_run = "bands" in recorded  # RGB-chip runs record only the chip size
    reading.chips = "raster" if raster_run else "rgb"
    if raster_run and stretch_scope is NOT_GIVEN:
        reading.stretch_scope = "tile"  # training stretched each chip on its own: so is each tile
    differs_scope = raster_run and stretch_scope == "scene" and learnt["stretch"] is not None
    differs = []
    for key, value in learnt.items():
        if key != "tile_size" and not raster_run or key == "tile_size" and value is None:
            continue
        if given[key] is NOT_GIVEN:
            setattr(reading, key, value)
            continue
        if key == "bands":
            if given[key] is not None and not _same_bands(value, given[key], scenes):
                trained = _text(value or [1, 2, 3])
                raise InputError(f"--bands {_text(given[key])}: {model} was trained on bands {trained}; "
                                 "omit --bands to read those")
        elif (tuple(given[key]) if isinstance(given[key], list) else given[key]) != value:
            differs.append(f"{FLAGS[key]} {_text(given[key])} (trained: {_text(value)})")
    if differs_scope:
        differs.append("--stretch-scope scene (trained: each chip stretched on its own)")
    if differs:
        reading.notes.append(f"note: {model} was trained reading chips otherwise; as given: {', '.join(differs)}")
    return reading
