"""``clipsuite-remote`` (also ``clipsuite remote``): index and search GeoTIFF scenes, classify, evaluate, train.

Thin: check arguments and paths (before torch is imported), call ``clipsuite.remote``, print.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from clipsuite.cli.aliases import ClipsuiteGroup
from clipsuite.cli.common import cli_errors, console, err_console, fail, parse_list
from clipsuite.core.outputs import check_output_dir, check_output_file
from clipsuite.remote_app import train_cmd, translate_cmd

if TYPE_CHECKING:
    from clipsuite.remote.reading import Reading

app = typer.Typer(name="remote", help="Remote sensing: multilingual retrieval over GeoTIFF scenes (tile, index, "
                  "search), zero-shot scene classification, retrieval evaluation, leakage check, fine-tuning "
                  "(multilingual, self-distillation, multispectral).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  cls=ClipsuiteGroup)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model: preset (rs-m-clip, remoteclip-b32 ...), "
                                       "open_clip name, folder, or the offline 'tiny-multilingual'.")]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda if available)")]
OFFLINE_MODEL = "tiny-multilingual"  # what the offline hint offers: reads the languages the presets read
OnErrorOpt = Annotated[str, typer.Option(help="skip: leave out unreadable files (listed, counted); fail: stop at "
                                           "the first.")]
BandsOpt = Annotated[str | None, typer.Option(help="Bands by 1-based index or name, comma-separated, e.g. "
                                              "'B04,B03,B02' or '4,3,2' (default: the first three).")]


def _on_error(value: str) -> str:
    if value not in ("skip", "fail"):
        fail(f"--on-error '{value}': choose skip or fail")
    return value


def _report_skipped(skipped: list, noun: str) -> None:
    """Every skipped file on its own line (stderr, yellow) after the count: the run accounts for each input."""
    if skipped:
        plural = noun if len(skipped) == 1 else f"{noun}s"
        err_console.print(f"[yellow]skipped {len(skipped)} unreadable {plural}:[/]", soft_wrap=True)
        for item in skipped:
            err_console.print(f"  {escape(item.reason if hasattr(item, 'reason') else item['reason'])}",
                              soft_wrap=True)


def _rgb_model(model: str | None, command: str) -> None:
    """A multispectral run's model cannot read the RGB pictures ``command`` reads: one line, before torch."""
    if model is not None:
        from clipsuite.remote.reading import check_rgb_model, model_bands

        check_rgb_model(model, model_bands(model), command)


def _weights(model: str | None) -> None:
    """An uncached model offline: one line from the Hugging Face cache, before torch is imported."""
    if model is not None:
        from clipsuite.core.weights_precheck import check_weights

        check_weights(model, None, OFFLINE_MODEL)


def _existing(paths: list[Path], globs: bool = False) -> None:
    for path in paths:
        if not path.exists() and not (globs and set("*?[") & set(str(path))):  # a quoted glob of band files
            fail(f"{path}: not found")


ScenesArg = Annotated[list[Path], typer.Argument(help="Scenes: rasters, band files (a folder or quoted glob of "
                                                "*_B4.TIF / *_B04_10m.jp2 ...), .SAFE / Landsat folders, STAC item "
                                                "JSON, or folders of them.")]
TileSizeOpt = Annotated[int | None, typer.Option(min=8, help="Tile side in output pixels (default: a trained run's "
                                                 "chip size, else 224).")]
S2OffsetOpt = Annotated[bool | None, typer.Option(help="Sentinel-2 L2A baseline >= 04.00: subtract 1000 DN.")]
StretchOpt = Annotated[str | None, typer.Option(help="Per-band percentile stretch 'LOW,HIGH' or 'none' (default "
                                                "2,98).")]
KindOpt = Annotated[str, typer.Option(help="Index kind: exact | ivf | ivfpq | hnsw (the core's store, as "
                                      "`clipsuite index build`).")]
MaxMemoryOpt = Annotated[str | None, typer.Option(help="Memory budget (e.g. 8G): with the default kind, picks kind, "
                                                  "codes and sizes; the build never holds all vectors.")]
NodataOpt = Annotated[str | None, typer.Option(help="Fill value of every scene, overriding the files' own (default: "
                                               "the file's; 0 in every band for integer products without a nodata "
                                               "tag).")]
StretchScopeOpt = Annotated[str | None, typer.Option("--stretch-scope", help="scene: one stretch per scene "
                                                     "(default); tile: each tile on its own, as `train` stretches "
                                                     "chips (default with a raster-trained --model).")]


def _index_reading(model: str, scenes: list[Path], bands: str | None, scale: float | None, s2_offset: bool | None,
                   stretch: str | None, tile_size: int | None, stretch_scope: str | None,
                   nodata: str | None) -> Reading:
    """The flags as typed -> how scenes are read (a flag left out: the trained run's reading, else the default)."""
    from clipsuite.remote.fill import parse_nodata
    from clipsuite.remote.flag_values import parse_bands, parse_stretch
    from clipsuite.remote.rasters import S2_L2A_OFFSET_DN
    from clipsuite.remote.reading import NOT_GIVEN, index_reading

    def given(value: Any, convert: Callable[[Any], Any] | None = None) -> Any:
        return NOT_GIVEN if value is None else (convert(value) if convert is not None else value)

    return index_reading(model, scenes, bands=given(bands, parse_bands), scale=given(scale),
                         offset=given(s2_offset, lambda on: S2_L2A_OFFSET_DN if on else 0.0),
                         stretch=given(stretch, parse_stretch), tile_size=given(tile_size),
                         stretch_scope=given(stretch_scope), nodata=given(nodata, parse_nodata))


def _say_reading(model: str, reading: Reading) -> None:
    from clipsuite.remote.reading import describe

    for note in reading.notes:
        console.print(note)
    if reading.from_model:
        console.print(f"reading as {model} was trained: {describe(reading)}")


def _report_index(result: Any) -> None:
    for record in result.fill:  # one line per scene: how much fill, recognised how
        scaling = f"; scaling from {record['scaling']}" if record.get("scaling") else ""
        console.print(escape(f"{record['scene']}: {100 * record['fraction']:.1f} % fill ({record['rule']})"
                             f"{scaling}"), soft_wrap=True)
    console.print(f"indexed {result.tiles} tiles from {result.scenes} scene(s) "
                  f"({result.skipped_nodata} nodata tiles skipped) -> {result.index_dir}")
    _report_skipped(result.skipped, "scene")


@app.command()
@cli_errors
def index(
    scenes: ScenesArg,
    out: Annotated[Path, typer.Option("--output", "-o", "--out", help="Index folder to write.")] = Path("scene_index"),
    model: ModelOpt = "tiny-multilingual", device: DeviceOpt = None, bands: BandsOpt = None,
    tile_size: TileSizeOpt = None,
    overlap: Annotated[int, typer.Option(min=0, help="Overlap between neighbouring tiles, output pixels.")] = 0,
    resolution: Annotated[float | None, typer.Option(help="Ground units per output pixel (default: native).")] = None,
    min_valid: Annotated[float, typer.Option(min=0.0, max=1.0, help="Skip tiles with less valid data.")] = 0.5,
    scale: Annotated[float | None, typer.Option(help="DN multiplier (default by dtype: uint16 1e-4).")] = None,
    s2_offset: S2OffsetOpt = None, stretch: StretchOpt = None, kind: KindOpt = "exact",
    max_memory: MaxMemoryOpt = None, batch_size: Annotated[int, typer.Option(min=1)] = 64,
    workers: Annotated[int, typer.Option(min=0, help="Tile-reading worker processes.")] = 2,
    on_error: OnErrorOpt = "skip", nodata: NodataOpt = None, stretch_scope: StretchScopeOpt = None,
) -> None:
    """Tile whole scenes (windowed reads), embed every tile, build a faiss index with tile geometry.

    With a model trained by `clipsuite-remote train`, bands, scaling, stretch and tile size default to
    how its training chips were read."""
    from clipsuite.core.index_plan import parse_memory
    from clipsuite.remote.prechecks import check_index_inputs, check_index_options
    from clipsuite.remote.tiling import TileSpec

    check_output_dir(out, "--output")
    _existing(scenes, globs=True)
    _on_error(on_error)
    check_index_options(kind, stretch_scope, resolution, scale)  # the arguments alone, before any file
    budget = parse_memory(max_memory) if max_memory is not None else None
    reading = _index_reading(model, scenes, bands, scale, s2_offset, stretch, tile_size, stretch_scope, nodata)
    tile = TileSpec(reading.tile_size, overlap, resolution, min_valid)  # --overlap against the tile it splits
    # before torch: every scene's header, bands and size (band sets, .SAFE, STAC items too), the model's weights
    sources = check_index_inputs(scenes, reading.bands, resolution, reading.tile_size, min_valid,
                                 on_error)  # type: ignore[arg-type]  # typer's str, checked by _on_error
    _weights(model)
    _say_reading(model, reading)
    from clipsuite.core.models import load_model
    from clipsuite.remote.scenes import SceneIndexConfig, build_scene_index

    config = SceneIndexConfig(bands=reading.bands, tile=tile, scale=reading.scale, offset=reading.offset,
                              stretch=reading.stretch, batch_size=batch_size, num_workers=workers,
                              on_error=on_error,  # type: ignore[arg-type]  # typer's str, checked by _on_error
                              nodata=reading.nodata, stretch_scope=reading.stretch_scope)
    result = build_scene_index(load_model(model, device=device), sources, out, config, model_spec=model, kind=kind,
                               max_memory=budget)
    if result is not None:
        _report_index(result)


@app.command()
@cli_errors
def search(
    index_dir: Annotated[Path, typer.Argument(help="Index folder from `clipsuite-remote index`.")],
    queries: Annotated[list[str], typer.Argument(help="Text queries, in any language the model reads.")],
    top: Annotated[int, typer.Option(min=1, help="Hits per query.")] = 20,
    out: Annotated[Path, typer.Option("--output", "-o", "--out",
                                      help="Folder for hits.geojson, thumbnails, index.html.")] = Path(
        "search_results"),
    crs: Annotated[str, typer.Option(help="wgs84 (RFC 7946) or scene (the scenes' own CRS).")] = "wgs84",
    model: Annotated[str | None, typer.Option("--model", "-m", help="Override the model recorded in the index.")
                     ] = None,
    device: DeviceOpt = None,
    bbox: Annotated[str | None, typer.Option(help="Only tiles whose footprint intersects lon0,lat0,lon1,lat1 "
                                             "(WGS84; lon0 > lon1 crosses 180 degrees).")] = None,
    within: Annotated[Path | None, typer.Option(help="Only tiles whose footprint intersects this GeoJSON "
                                                "Polygon/MultiPolygon area (WGS84).")] = None,
) -> None:
    """Search an index with text; write GeoJSON polygons with scores, PNG thumbnails and an HTML page."""
    check_output_dir(out, "--output")
    if not index_dir.is_dir():
        fail(f"{index_dir}: index folder not found")
    if crs not in ("wgs84", "scene"):
        fail(f"--crs '{crs}': choose wgs84 or scene")
    if any(not q.strip() for q in queries):
        fail("empty query")
    from clipsuite.remote.geo_filter import area_from_options, check_area_index

    area = area_from_options(bbox, within)  # a bad box or area file: one line, before torch
    if area is not None:
        check_area_index(index_dir, area)  # an old or CRS-less index, before torch
    _weights(model)
    from clipsuite.core.models import load_model
    from clipsuite.remote.search import load_scene_index, search_scenes, write_search_results

    _, config = load_scene_index(index_dir)
    clip = load_model(model, device=device) if model else None
    hits = [h for per_query in search_scenes(index_dir, queries, top, clip, device, area) for h in per_query]
    if area is not None and not hits:
        fail(f"no tile of {index_dir} intersects {area.label}")
    folder = write_search_results(hits, config, out, crs)
    for hit in hits[: min(len(hits), 10)]:
        console.print(f"{hit.query[:40]:40s} #{hit.rank:<3d} {hit.score:.4f}  {hit.tile['id']}")
    console.print(f"{len(hits)} hits -> {folder / 'hits.geojson'}, {folder / 'index.html'}")


def _json_out(path: Path | None) -> None:
    if path is not None:
        check_output_file(path, "--output")


def _write_json(path: Path, data: object) -> None:
    import json

    from clipsuite.core.staging import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@app.command()
@cli_errors
def classify(
    root: Annotated[Path, typer.Argument(help="Class folders (EuroSAT / RESISC45 layout: ROOT/<Class>/*.jpg).")],
    model: ModelOpt = "tiny-multilingual", device: DeviceOpt = None,
    out: Annotated[Path | None, typer.Option("--output", "-o", "--out", help="JSON with accuracy, predictions and the "
                                             "skipped files.")] = None,
    on_error: OnErrorOpt = "skip",
    nodata: Annotated[str | None, typer.Option(help="Fill value: pictures that hold only it (every pixel, "
                                               "every channel) are left out and listed.")] = None,
) -> None:
    """Zero-shot scene classification with remote-sensing templates; top-1/top-5 accuracy."""
    _json_out(out)
    if not root.is_dir():
        fail(f"{root}: folder not found")
    _on_error(on_error)
    from clipsuite.remote.fill import parse_nodata

    fill_value = parse_nodata(nodata)
    _rgb_model(model, "classify")
    _weights(model)
    from clipsuite.core.models import load_model
    from clipsuite.remote.evaluate import zero_shot_classify

    result = zero_shot_classify(load_model(model, device=device), root, on_error=on_error,  # type: ignore[arg-type]  # typer's str
                                nodata=fill_value)
    top = next(k for k in result if k.startswith("top") and k != "top1")
    console.print(f"{result['images']} images, {len(result['classes'])} classes: top-1 {result['top1']:.2f}%, "
                  f"{top} {result[top]:.2f}%")
    _report_skipped(result["skipped"], "image")
    if result["fill"]:
        err_console.print(f"[yellow]left out {len(result['fill'])} fill image(s) (every pixel {fill_value:g}):[/]",
                          soft_wrap=True)
        for path in result["fill"]:
            err_console.print(f"  {escape(path)}", soft_wrap=True)
    if out is not None:
        _write_json(out, result)


@app.command("evaluate")
@cli_errors
def evaluate_cmd(
    captions: Annotated[Path, typer.Argument(help="Karpathy-style caption JSON (RSICD, RSITMD, UCM, Sydney).")],
    split: Annotated[str, typer.Option(help="Split to evaluate ('all' for every image).")] = "test",
    languages: Annotated[str, typer.Option(help="Comma-separated languages, e.g. en,zh,ru.")] = "en",
    translations: Annotated[Path | None, typer.Option(help="Translations JSONL (caption -> language -> text).")
                            ] = None,
    model: ModelOpt = "tiny-multilingual", device: DeviceOpt = None,
    out: Annotated[Path | None, typer.Option("--output", "-o", "--out", help="JSON with every row.")] = None,
) -> None:
    """Retrieval R@1/5/10 both ways and mean recall, in both conventions (labelled), per language."""
    _json_out(out)
    if not captions.is_file():
        fail(f"{captions}: file not found")
    if translations is not None and not translations.is_file():
        fail(f"{translations}: file not found")
    langs = parse_list(languages, "--languages", kind="languages", example="en,zh,ru")
    _rgb_model(model, "evaluate")
    _weights(model)
    from clipsuite.core.models import load_model
    from clipsuite.remote.evaluate import evaluate_captions

    rows = evaluate_captions(load_model(model, device=device), captions, None if split == "all" else split, langs,
                             translations)
    for row in rows:
        console.print(f"{row['language']:>3s} {row['convention']:>5s}: mR {row['mean_recall']:6.2f}  "
                      f"i2t R@1/5/10 {row['image_to_text_R@1']:.1f}/{row['image_to_text_R@5']:.1f}/"
                      f"{row['image_to_text_R@10']:.1f}  t2i {row['text_to_image_R@1']:.1f}/"
                      f"{row['text_to_image_R@5']:.1f}/{row['text_to_image_R@10']:.1f}")
    if out is not None:
        _write_json(out, rows)


@app.command()
@cli_errors
def leakage(
    train: Annotated[Path, typer.Argument(help="Training images (folder).")],
    test: Annotated[Path, typer.Argument(help="Test images (folder).")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Also find near-duplicates by embedding.")
                     ] = None,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Cosine for a near-duplicate.")] = 0.98,
    device: DeviceOpt = None,
    out: Annotated[Path | None, typer.Option("--output", "-o", "--out",
                                             help="JSON: leaked test images and skipped files.")
                   ] = None,
    on_error: OnErrorOpt = "skip",
) -> None:
    """Find test images that are also training images (identical pixels, or near-duplicate embeddings)."""
    _json_out(out)
    for folder in (train, test):
        if not folder.is_dir():
            fail(f"{folder}: folder not found")
    _on_error(on_error)
    _rgb_model(model, "leakage")
    _weights(model)
    from clipsuite.core.images import list_images
    from clipsuite.core.models import load_model
    from clipsuite.core.skipping import SkipLog
    from clipsuite.remote.evaluate import find_leakage

    clip = load_model(model, device=device) if model else None
    log = SkipLog(on_error)  # type: ignore[arg-type]  # typer's str, checked by SkipLog
    found = find_leakage(list_images(train), list_images(test), clip, threshold, log=log)
    console.print(f"{len(found)} leaked test image(s)")
    for row in found[:20]:
        console.print(f"  {row['kind']:>14s} {row['similarity']:.4f}  {row['test']} <- {row['train']}")
    _report_skipped(log.skipped, "image")
    if out is not None:
        _write_json(out, {"leaked": found, "skipped": [item.as_dict() for item in log.skipped]})


train_cmd.register(app)
translate_cmd.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
