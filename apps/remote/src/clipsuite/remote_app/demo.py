"""The remote-sensing step of ``clipsuite demo``: a synthetic 4-band GeoTIFF scene, tiled and indexed with
the offline ``tiny-multilingual`` model, searched in three languages; GeoJSON, thumbnails and a page
in the step's folder. The model is untrained: the demo shows the pipeline, not retrieval quality."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clipsuite.core.plugins import DemoStepResult

QUERIES = ("a solar farm with rows of panels", "一片茂密的绿色森林", "извилистая синяя река")


def run_demo_step(out_dir: Path, log: Callable[[str], None]) -> DemoStepResult:
    import numpy as np
    from PIL import Image

    from clipsuite.core.models import load_model
    from clipsuite.remote import synthetic
    from clipsuite.remote.rasters import read_image
    from clipsuite.remote.scenes import SceneIndexConfig, build_scene_index
    from clipsuite.remote.search import search_scenes, write_search_results
    from clipsuite.remote.tiling import TileSpec

    folder = Path(out_dir)  # the step's own folder
    log("writing a 4-band uint16 GeoTIFF scene (UTM 33N, 10 m, nodata border)")
    layout = synthetic.write_scene(folder / "scenes" / "scene.tif", rows=4, cols=5, cell=64)
    rgb, _ = read_image(layout.path, ["B04", "B03", "B02"])
    preview = folder / "scene.png"
    Image.fromarray((rgb.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(preview)
    config = SceneIndexConfig(bands=["B04", "B03", "B02"], tile=TileSpec(size=64), num_workers=0, progress=False)
    clip = load_model("tiny-multilingual", device="cpu")
    result = build_scene_index(clip, [layout.path], folder / "index", config, model_spec="tiny-multilingual")
    log(f"indexed {result.tiles} tiles ({result.skipped_nodata} nodata tiles skipped)")
    hits = [h for per_query in search_scenes(result.index_dir, QUERIES, top=3, clip=clip) for h in per_query]
    results = write_search_results(hits, config, folder / "search")
    geojson = (results / "hits.geojson").relative_to(folder)
    log(f"{len(hits)} hits for {len(QUERIES)} queries (en, zh, ru) -> {geojson}")
    return DemoStepResult(
        title="Remote sensing: scene tiling, index and multilingual search",
        summary=[f"{result.tiles} tiles indexed, {result.skipped_nodata} nodata tiles skipped",
                 "queries: " + " | ".join(QUERIES), "tiny-multilingual is untrained: hits show the pipeline only"],
        metrics={"tiles": float(result.tiles), "skipped_nodata": float(result.skipped_nodata)},
        files={"hits (GeoJSON)": results / "hits.geojson", "search page": results / "index.html"},
        pictures={"scene (B04, B03, B02)": preview, "top hit": results / "thumbnails" / "0000.png"},
    ).relative_to(folder)
