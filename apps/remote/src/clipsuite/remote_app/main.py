"""``clipsuite-remote`` (also ``clipsuite remote``): index and search GeoTIFF scenes, classify, evaluate, train.

Thin: check arguments and paths (before torch is imported), call ``clipsuite.remote``, print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipsuite.cli.common import cli_errors, console, fail

app = typer.Typer(name="remote", help="Remote sensing: multilingual retrieval over GeoTIFF scenes (tile, index, "
                  "search), zero-shot scene classification, retrieval evaluation, fine-tuning.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model: preset (rs-m-clip, remoteclip-b32 ...), "
                                       "open_clip name, folder, or the offline 'tiny-multilingual'.")]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda if available)")]
BandsOpt = Annotated[str | None, typer.Option(help="Bands by 1-based index or name, comma-separated, e.g. "
                                              "'B04,B03,B02' or '4,3,2' (default: the first three).")]


def _bands(text: str | None) -> list[int | str] | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        fail(f"--bands '{text}': no band given")
    return [int(p) if p.isdigit() else p for p in parts]


def _stretch(text: str) -> tuple[float, float] | None:
    if text.lower() == "none":
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        fail(f"--stretch '{text}': give two percentiles 'LOW,HIGH' (e.g. 2,98) or 'none'")
    if not 0 <= low < high <= 100:
        fail(f"--stretch '{text}': need 0 <= LOW < HIGH <= 100")
    return low, high


def _existing(paths: list[Path]) -> None:
    for path in paths:
        if not path.exists():
            fail(f"{path}: not found")


@app.command()
@cli_errors
def index(
    scenes: Annotated[list[Path], typer.Argument(help="GeoTIFF scenes or folders of them.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index folder to write.")] = Path("scene_index"),
    model: ModelOpt = "tiny-multilingual", device: DeviceOpt = None, bands: BandsOpt = None,
    tile_size: Annotated[int, typer.Option(min=8, help="Tile side in output pixels.")] = 224,
    overlap: Annotated[int, typer.Option(min=0, help="Overlap between neighbouring tiles, output pixels.")] = 0,
    resolution: Annotated[float | None, typer.Option(help="Ground units per output pixel (default: native).")] = None,
    min_valid: Annotated[float, typer.Option(min=0.0, max=1.0, help="Skip tiles with less valid data.")] = 0.5,
    scale: Annotated[float | None, typer.Option(help="DN multiplier (default by dtype: uint16 1e-4).")] = None,
    s2_offset: Annotated[bool, typer.Option(help="Sentinel-2 L2A baseline >= 04.00: subtract 1000 DN.")] = False,
    stretch: Annotated[str, typer.Option(help="Per-band percentile stretch 'LOW,HIGH' or 'none'.")] = "2,98",
    kind: Annotated[str, typer.Option(help="faiss index kind: exact | ivf | hnsw.")] = "exact",
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    workers: Annotated[int, typer.Option(min=0, help="Tile-reading worker processes.")] = 2,
) -> None:
    """Tile whole scenes (windowed reads), embed every tile, build a faiss index with tile geometry."""
    _existing(scenes)
    if overlap >= tile_size:
        fail(f"--overlap {overlap} must be smaller than --tile-size {tile_size}")
    if kind not in ("exact", "ivf", "ivfpq", "hnsw"):
        fail(f"--kind '{kind}': choose exact, ivf, ivfpq or hnsw")
    band_list, stretch_pair = _bands(bands), _stretch(stretch)
    from clipsuite.core.models import load_model
    from clipsuite.remote.rasters import S2_L2A_OFFSET_DN
    from clipsuite.remote.scenes import SceneIndexConfig, build_scene_index
    from clipsuite.remote.tiling import TileSpec

    config = SceneIndexConfig(bands=band_list, tile=TileSpec(tile_size, overlap, resolution, min_valid),
                              scale=scale, offset=S2_L2A_OFFSET_DN if s2_offset else 0.0, stretch=stretch_pair,
                              batch_size=batch_size, num_workers=workers)
    result = build_scene_index(load_model(model, device=device), scenes, out, config, model_spec=model, kind=kind)
    if result is not None:
        console.print(f"indexed {result.tiles} tiles from {result.scenes} scene(s) "
                      f"({result.skipped_nodata} nodata tiles skipped) -> {result.index_dir}")


@app.command()
@cli_errors
def search(
    index_dir: Annotated[Path, typer.Argument(help="Index folder from `clipsuite-remote index`.")],
    queries: Annotated[list[str], typer.Argument(help="Text queries, in any language the model reads.")],
    top: Annotated[int, typer.Option(min=1, help="Hits per query.")] = 20,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for hits.geojson, thumbnails, index.html.")] = Path(
        "search_results"),
    crs: Annotated[str, typer.Option(help="wgs84 (RFC 7946) or scene (the scenes' own CRS).")] = "wgs84",
    model: Annotated[str | None, typer.Option("--model", "-m", help="Override the model recorded in the index.")
                     ] = None,
    device: DeviceOpt = None,
) -> None:
    """Search an index with text; write GeoJSON polygons with scores, PNG thumbnails and an HTML page."""
    if not index_dir.is_dir():
        fail(f"{index_dir}: index folder not found")
    if crs not in ("wgs84", "scene"):
        fail(f"--crs '{crs}': choose wgs84 or scene")
    if any(not q.strip() for q in queries):
        fail("empty query")
    from clipsuite.core.models import load_model
    from clipsuite.remote.search import load_scene_index, search_scenes, write_search_results

    _, config = load_scene_index(index_dir)
    clip = load_model(model, device=device) if model else None
    hits = [h for per_query in search_scenes(index_dir, queries, top, clip, device) for h in per_query]
    folder = write_search_results(hits, config, out, crs)
    for hit in hits[: min(len(hits), 10)]:
        console.print(f"{hit.query[:40]:40s} #{hit.rank:<3d} {hit.score:.4f}  {hit.tile['id']}")
    console.print(f"{len(hits)} hits -> {folder / 'hits.geojson'}, {folder / 'index.html'}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
