"""Small remote-sensing datasets in the real on-disk formats, for tests, the demo and benchmarks.

* ``write_scene``: a 4-band uint16 GeoTIFF (B02, B03, B04, B08 reflectance x 10000, UTM 33N, 10 m,
  nodata 0) made of square cells, each drawn as one land-cover class (forest, river, solar farm,
  farmland, desert, residential), with a nodata border of whole cells on the left. Written cell by
  cell into a tiled file, so a 20k x 20k px scene needs memory for one cell only. Returns the layout:
  which class is where, in pixels. ``crs`` and ``origin`` place it elsewhere (another UTM zone).
  ``synthetic_deliveries`` cuts such a scene into band files, a ``.SAFE``, a Landsat folder, a STAC item.
* ``write_captions``: RSICD-style Karpathy JSON with PNG chips, captions in English, plus a
  translations JSONL (caption -> language -> text) into pt, es, fr, de, zh, ko, ru.
* ``write_class_folders``: EuroSAT-style class folders, RGB PNG or multi-band GeoTIFF chips (4 bands,
  or the 13 Sentinel-2 bands of EuroSAT-MS with ``bands=SENTINEL2_13``).

Bands other than B02/B03/B04/B08 are derived from those four (``spectral_bands``): coastal aerosol
near blue, red edge between red and NIR, SWIR following NIR and darkening over water, a dim water
vapour and cirrus band; enough for a multispectral model to have something band-specific to learn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from PIL import Image
from rasterio.windows import Window

from clipsuite.core.checkpoints import atomic_write_json, atomic_write_text
from clipsuite.remote.rasters import SENTINEL2_13

CLASSES = ("forest", "river", "solar_farm", "farmland", "desert", "residential")
LANGUAGES = ("en", "pt", "es", "fr", "de", "zh", "ko", "ru")
BANDS = ("B02", "B03", "B04", "B08")
CRS = "EPSG:32633"
ORIGIN = (500_000.0, 5_000_000.0)  # UTM 33N, near 45 N 15 E
RESOLUTION = 10.0
# display limits (reflectance) mapping B04/B03/B02 to 0-255 in PNG chips
_DISPLAY = (0.0, 0.35)

# mean reflectance per class in B02, B03, B04, B08
_SPECTRA = {
    "forest": (0.03, 0.06, 0.03, 0.35),
    "river": (0.08, 0.07, 0.04, 0.02),
    "solar_farm": (0.12, 0.12, 0.13, 0.16),
    "farmland": (0.05, 0.09, 0.08, 0.30),
    "desert": (0.20, 0.25, 0.30, 0.34),
    "residential": (0.13, 0.13, 0.15, 0.20),
}

# two English captions per class, each with its translations (hand-written, not machine output)
CAPTIONS: dict[str, list[dict[str, str]]] = {
    "forest": [
        {"en": "a dense green forest", "pt": "uma floresta verde e densa", "es": "un bosque verde y denso",
         "fr": "une forêt verte et dense", "de": "ein dichter grüner Wald", "zh": "一片茂密的绿色森林",
         "ko": "울창한 푸른 숲", "ru": "густой зелёный лес"},
        {"en": "many trees in a forest area", "pt": "muitas árvores numa área florestal",
         "es": "muchos árboles en una zona forestal", "fr": "de nombreux arbres dans une zone forestière",
         "de": "viele Bäume in einem Waldgebiet", "zh": "森林地区有许多树木", "ko": "숲 지역에 많은 나무들",
         "ru": "много деревьев в лесной зоне"},
    ],
    "river": [
        {"en": "a river flows through the land", "pt": "um rio atravessa a terra", "es": "un río atraviesa el terreno",
         "fr": "une rivière traverse le terrain", "de": "ein Fluss fließt durch das Land", "zh": "一条河流穿过大地",
         "ko": "강이 땅을 가로질러 흐른다", "ru": "река течёт через местность"},
        {"en": "a winding blue river", "pt": "um rio azul sinuoso", "es": "un río azul sinuoso",
         "fr": "une rivière bleue sinueuse", "de": "ein gewundener blauer Fluss", "zh": "一条蜿蜒的蓝色河流",
         "ko": "구불구불한 푸른 강", "ru": "извилистая синяя река"},
    ],
    "solar_farm": [
        {"en": "a solar farm with rows of panels", "pt": "uma usina solar com fileiras de painéis",
         "es": "una granja solar con filas de paneles", "fr": "une ferme solaire avec des rangées de panneaux",
         "de": "ein Solarpark mit Reihen von Modulen", "zh": "一座有成排面板的太阳能电站",
         "ko": "패널이 줄지어 있는 태양광 발전소", "ru": "солнечная электростанция с рядами панелей"},
        {"en": "many solar panels in a field", "pt": "muitos painéis solares num campo",
         "es": "muchos paneles solares en un campo", "fr": "de nombreux panneaux solaires dans un champ",
         "de": "viele Solarmodule auf einem Feld", "zh": "田野里有许多太阳能板", "ko": "들판에 있는 많은 태양광 패널",
         "ru": "много солнечных панелей в поле"},
    ],
    "farmland": [
        {"en": "farmland with striped fields", "pt": "terras agrícolas com campos listrados",
         "es": "tierras de cultivo con campos a rayas", "fr": "des terres agricoles aux champs rayés",
         "de": "Ackerland mit gestreiften Feldern", "zh": "条纹状的农田", "ko": "줄무늬 모양의 농경지",
         "ru": "сельхозугодья с полосатыми полями"},
        {"en": "green and brown crop fields", "pt": "campos de cultivo verdes e castanhos",
         "es": "campos de cultivo verdes y marrones", "fr": "des champs cultivés verts et bruns",
         "de": "grüne und braune Felder mit Getreide", "zh": "绿色和棕色的庄稼地", "ko": "초록색과 갈색의 농작물 밭",
         "ru": "зелёные и коричневые поля с посевами"},
    ],
    "desert": [
        {"en": "a bare sandy desert", "pt": "um deserto de areia nua", "es": "un desierto de arena desnuda",
         "fr": "un désert de sable nu", "de": "eine kahle Sandwüste", "zh": "一片荒芜的沙漠", "ko": "황량한 모래 사막",
         "ru": "голая песчаная пустыня"},
        {"en": "dry yellow sand with no plants", "pt": "areia amarela seca sem plantas",
         "es": "arena amarilla seca sin plantas", "fr": "du sable jaune sec sans plantes",
         "de": "trockener gelber Sand ohne Pflanzen", "zh": "没有植物的干燥黄沙", "ko": "식물이 없는 건조한 노란 모래",
         "ru": "сухой жёлтый песок без растений"},
    ],
    "residential": [
        {"en": "a dense residential area with houses", "pt": "uma área residencial densa com casas",
         "es": "una zona residencial densa con casas", "fr": "un quartier résidentiel dense avec des maisons",
         "de": "ein dichtes Wohngebiet mit Häusern", "zh": "房屋密集的住宅区", "ko": "주택이 밀집한 주거 지역",
         "ru": "плотный жилой район с домами"},
        {"en": "many buildings and roads in a city", "pt": "muitos edifícios e estradas numa cidade",
         "es": "muchos edificios y calles en una ciudad", "fr": "de nombreux bâtiments et routes dans une ville",
         "de": "viele Gebäude und Straßen in einer Stadt", "zh": "城市里有许多建筑和道路",
         "ko": "도시의 많은 건물과 도로", "ru": "много зданий и дорог в городе"},
    ],
}


def render(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Reflectance ``[4, size, size]`` (B02, B03, B04, B08) of one land-cover class."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    spectrum = np.asarray(_SPECTRA[kind], np.float32)[:, None, None]
    noise = rng.normal(0.0, 0.004, (4, size, size)).astype(np.float32)
    image = np.broadcast_to(spectrum, (4, size, size)).copy()
    phase = rng.uniform(0, 1)
    if kind == "forest":  # blotchy canopy
        image *= 1.0 + 0.25 * np.sin(2 * np.pi * (7 * x + phase)) * np.sin(2 * np.pi * (6 * y + phase))
    elif kind == "river":  # a blue meander over grassland
        centre = 0.5 + 0.2 * np.sin(2 * np.pi * (1.2 * y + phase))
        water = np.abs(x - centre) < 0.12
        grass = np.asarray(_SPECTRA["farmland"], np.float32)[:, None, None] * np.ones((1, size, size), np.float32)
        image = np.where(water[None], image, grass)
    elif kind == "solar_farm":  # dark panel rows on bright ground
        rows = (np.floor((y + phase) * 10) % 2 == 0) & (x > 0.08) & (x < 0.92)
        image = np.where(rows[None], image * 0.35, image * 1.3)
    elif kind == "farmland":  # stripes alternating green crop / brown soil
        stripes = (np.floor((x * 0.8 + y * 0.2 + phase) * 6) % 2 == 0)
        soil = np.asarray((0.08, 0.10, 0.13, 0.20), np.float32)[:, None, None] * np.ones((1, size, size), np.float32)
        image = np.where(stripes[None], image, soil)
    elif kind == "desert":  # smooth dunes
        image *= 1.0 + 0.08 * np.sin(2 * np.pi * (3 * x + 2 * y + phase))
    elif kind == "residential":  # building blocks on a street grid
        streets = ((np.floor((x + phase) * 8 * 4) % 4) == 0) | ((np.floor((y + phase) * 8 * 4) % 4) == 0)
        roofs = ((np.floor((x + phase) * 16) + np.floor((y + phase) * 16)) % 2 == 0)
        image = np.where(streets[None], image * 0.6, np.where(roofs[None], image * 1.5, image))
    else:
        raise ValueError(f"unknown class '{kind}' (known: {', '.join(CLASSES)})")
    return np.clip(image + noise, 0.001, 1.0).astype(np.float32)


def spectral_bands(reflectance: np.ndarray, bands: tuple[str, ...] = BANDS) -> np.ndarray:
    """``[4, H, W]`` (B02, B03, B04, B08) -> ``[len(bands), H, W]`` with the other Sentinel-2 bands
    derived from those four (see the module note)."""
    blue, green, red, nir = reflectance
    derived = {"B01": 0.9 * blue + 0.02, "B02": blue, "B03": green, "B04": red,
               "B05": 0.7 * red + 0.3 * nir, "B06": 0.4 * red + 0.6 * nir, "B07": 0.2 * red + 0.8 * nir,
               "B08": nir, "B8A": 0.97 * nir + 0.005, "B09": 0.3 * nir + 0.01, "B10": 0.02 + 0.05 * blue,
               "B11": 0.5 * nir + 0.4 * red + 0.02, "B12": 0.3 * nir + 0.5 * red + 0.01}
    unknown = [b for b in bands if b not in derived]
    if unknown:
        raise ValueError(f"unknown band(s) {', '.join(unknown)} (known: {', '.join(SENTINEL2_13)})")
    return np.clip(np.stack([derived[b] for b in bands]), 0.001, 1.0).astype(np.float32)


def to_uint16(reflectance: np.ndarray) -> np.ndarray:
    """Reflectance -> DN x 10000; 0 stays reserved for nodata."""
    return np.clip(np.round(reflectance * 10000), 1, 65535).astype(np.uint16)


def to_rgb8(reflectance: np.ndarray) -> np.ndarray:
    """B04, B03, B02 -> ``[H, W, 3]`` uint8 with fixed display limits (the same for every chip)."""
    rgb = reflectance[[2, 1, 0]].transpose(1, 2, 0)
    return (np.clip((rgb - _DISPLAY[0]) / (_DISPLAY[1] - _DISPLAY[0]), 0, 1) * 255).round().astype(np.uint8)


@dataclass
class SceneLayout:
    """Where the classes are: ``cells[r][c]`` is a class name, or ``None`` for a nodata cell."""

    path: Path
    cell: int
    cells: list[list[str | None]]
    transform: Affine

    def cell_window(self, r: int, c: int) -> tuple[int, int, int, int]:
        """``(col_off, row_off, width, height)`` in pixels."""
        return c * self.cell, r * self.cell, self.cell, self.cell

    def where(self, kind: str) -> list[tuple[int, int]]:
        return [(r, c) for r, row in enumerate(self.cells) for c, k in enumerate(row) if k == kind]


def write_scene(path: str | Path, rows: int = 4, cols: int = 5, cell: int = 64, seed: int = 0,
                nodata_cols: int = 1, crs: str | None = CRS, band_descriptions: bool = True,
                cells: list[list[str | None]] | None = None, bands: tuple[str, ...] = BANDS,
                origin: tuple[float, float] = ORIGIN) -> SceneLayout:
    """A ``rows x cols`` grid of ``cell``-px class cells; the first ``nodata_cols`` columns are nodata.
    ``crs=None`` writes a raster without georeference (the no-CRS case); ``bands`` names the bands
    written (default B02, B03, B04, B08; ``rasters.SENTINEL2_13`` for all 13)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if cells is None:
        order = [CLASSES[i % len(CLASSES)] for i in range(rows * (cols - nodata_cols))]
        rng.shuffle(order)
        cells = [[None] * nodata_cols + order[r * (cols - nodata_cols):(r + 1) * (cols - nodata_cols)]
                 for r in range(rows)]
    transform = Affine(RESOLUTION, 0, origin[0], 0, -RESOLUTION, origin[1])
    profile = {"driver": "GTiff", "width": cols * cell, "height": rows * cell, "count": len(bands),
               "dtype": "uint16", "nodata": 0, "compress": "deflate"}
    if cell % 16 == 0:
        profile.update(tiled=True, blockxsize=min(256, cell), blockysize=min(256, cell))
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    tmp = path.with_name(f".{path.name}.tmp")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r, row in enumerate(cells):
            for c, kind in enumerate(row):
                window = Window(c * cell, r * cell, cell, cell)
                block = np.zeros((len(bands), cell, cell), np.uint16) if kind is None else to_uint16(
                    spectral_bands(render(kind, cell, rng), bands))
                dst.write(block, window=window)
        if band_descriptions:
            for i, name in enumerate(bands, start=1):
                dst.set_band_description(i, name)
    tmp.replace(path)
    return SceneLayout(path, cell, cells, transform if crs is not None else Affine.identity())


def write_captions(root: str | Path, per_class: int = 6, size: int = 64, seed: int = 1,
                   test_fraction: float = 0.34, name: str = "dataset_rsicd.json") -> tuple[Path, Path]:
    """RSICD-style ``root/images/*.png`` + Karpathy JSON (English) + ``translations.jsonl``. Each image
    carries both captions of its class; splits are per image (``train`` / ``test``)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images: list[dict[str, Any]] = []
    n_test = max(1, round(per_class * test_fraction))
    for kind in CLASSES:
        for i in range(per_class):
            filename = f"{kind}_{i:03d}.png"
            Image.fromarray(to_rgb8(render(kind, size, rng))).save(root / "images" / filename)
            sentences = [{"raw": c["en"], "tokens": c["en"].split()} for c in CAPTIONS[kind]]
            images.append({"filename": filename, "filepath": "images", "imgid": len(images),
                           "split": "test" if i < n_test else "train", "sentences": sentences, "class": kind})
    captions = root / name
    atomic_write_json(captions, {"dataset": "synthetic-rsicd", "images": images})
    lines = []
    for options in CAPTIONS.values():
        for option in options:
            lines.append(json.dumps({"caption": option["en"],
                                     "translations": {k: v for k, v in option.items() if k != "en"}},
                                    ensure_ascii=False))
    translations = root / "translations.jsonl"
    atomic_write_text(translations, "\n".join(lines) + "\n")
    return captions, translations


def write_class_folders(root: str | Path, per_class: int = 4, size: int = 64, seed: int = 2,
                        multispectral: bool = False, classes: tuple[str, ...] = CLASSES,
                        bands: tuple[str, ...] = BANDS, band_descriptions: bool = True) -> Path:
    """EuroSAT-style ``root/<Class>/<Class>_<i>.png`` (RGB) or, ``multispectral``, ``.tif`` chips (uint16
    reflectance x 10000 of ``bands``, named unless ``band_descriptions=False``, as EuroSAT-MS ships
    its 13 bands)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for kind in classes:
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            reflectance = render(kind, size, rng)
            if multispectral:
                with rasterio.open(folder / f"{kind}_{i}.tif", "w", driver="GTiff", width=size, height=size,
                                   count=len(bands), dtype="uint16") as dst:
                    dst.write(to_uint16(spectral_bands(reflectance, bands)))
                    if band_descriptions:
                        for b, band in enumerate(bands, start=1):
                            dst.set_band_description(b, band)
            else:
                Image.fromarray(to_rgb8(reflectance)).save(folder / f"{kind}_{i}.png")
    return root
