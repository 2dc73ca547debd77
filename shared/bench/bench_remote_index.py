"""Scene index build: tiles/s of the windowed pipeline against the encoder alone (issue 9: ratio >= 0.8),
and tiling memory at growing scene sizes (must not grow with the scene).

Throughput on one scene (``--throughput-size``, default the smallest; what ``clipsuite-remote index SCENE``
does): windowed reads of a 4-band uint16 GeoTIFF, band selection, nodata masks, reflectance scaling,
scene-wide percentile stretch, resize/normalise in torch, encode, write the shard. Baseline: the same
encoder on preloaded, preprocessed tiles of that scene (at most ``--baseline-tiles``). Where the time
goes: the tiling pass alone (read + scale + stretch, no encoder). Peer: torchgeo's ``RasterDataset`` +
``GridGeoSampler`` (same tile grid, same DataLoader workers) feeding the same encoder, with a fixed
reflectance scaling (cheaper than our stretch) and the same resize/normalise.
Memory: tracemalloc peak of the tiling pass (numpy buffers) at each scene size, one scene at a time.
Per-band input (issue 18, ``--no-per-band`` to skip): the same scenes cut into one GeoTIFF per band
(``synthetic_deliveries.write_band_files``, 10 m bands only), read as one scene through the in-memory VRT;
tiling and pipeline throughput against the stacked GeoTIFF in the same run, and tiling memory per size;
and the tiling pass over B04,B03 + B11 at 20 m (upsampled bilinearly onto the 10 m grid as windows are read).

    uv run python shared/bench/run.py remote_index                              # 5k, 10k, 20k px
    uv run python shared/bench/run.py remote_index -- --sizes 1024,2048,4096 --model tiny-multilingual
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

from harness import BenchResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny-multilingual", help="model spec (random init is fine)")
    parser.add_argument("--pretrained", default=None, help="'none': random weights for an architecture name "
                                                           "(ViT-B-32 ...), which is all a speed figure needs")
    parser.add_argument("--sizes", default="5000,10000,20000", help="scene sides in pixels")
    parser.add_argument("--tile", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--baseline-tiles", type=int, default=512, help="preloaded tiles for the encoder alone")
    parser.add_argument("--throughput-size", type=int, default=None, help="scene side for the throughput runs "
                        "(default: the smallest of --sizes)")
    parser.add_argument("--no-torchgeo", action="store_true", help="skip the torchgeo side-by-side run")
    parser.add_argument("--no-per-band", action="store_true", help="skip the one-file-per-band runs")


def _torchgeo_tiles_per_s(path: Path, clip, tile: int, batch: int, workers: int) -> tuple[float, int]:
    """torchgeo RasterDataset + GridGeoSampler -> the same encoder; (seconds, tiles)."""
    import torch
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler

    from clipsuite.remote.scenes import model_input

    class Scene(RasterDataset):
        filename_glob = path.name
        is_image = True
        all_bands = ("B02", "B03", "B04", "B08")
        rgb_bands = ("B04", "B03", "B02")

    start = time.perf_counter()
    dataset = Scene(paths=str(path.parent), bands=("B04", "B03", "B02"))
    sampler = GridGeoSampler(dataset, size=tile, stride=tile)
    loader = DataLoader(dataset, sampler=sampler, batch_size=batch, num_workers=workers, collate_fn=stack_samples)
    count = 0
    for sample in loader:
        pixels = (sample["image"].float() / 3500.0).clamp(0, 1)  # reflectance 0-0.35 -> 0-1, fixed
        clip.encode_image_tensor(model_input(pixels, clip))
        count += len(pixels)
    if clip.device.type == "cuda":
        torch.cuda.synchronize(clip.device)
    return time.perf_counter() - start, count


def run(args: argparse.Namespace) -> BenchResult:
    import torch

    from clipsuite.core.models import load_model
    from clipsuite.remote import synthetic, synthetic_deliveries
    from clipsuite.remote.scenes import SceneIndexConfig, embed_scene_tiles, model_input
    from clipsuite.remote.sources import find_scene_sources
    from clipsuite.remote.tiling import TileSpec, iter_tiles

    sizes = [int(v) for v in args.sizes.split(",")]
    clip = load_model(args.model, pretrained=args.pretrained, device=args.device)
    spec = TileSpec(size=args.tile, min_valid=0.0)
    config = SceneIndexConfig(bands=["B04", "B03", "B02"], tile=spec, batch_size=args.batch,
                              num_workers=args.workers, progress=False)
    result = BenchResult("remote_index", params={"model": args.model, "pretrained": args.pretrained, "sizes": sizes,
                                                 "tile": args.tile, "batch": args.batch, "workers": args.workers,
                                                 "device": str(clip.device), "threads": torch.get_num_threads()})
    with tempfile.TemporaryDirectory() as tmp:
        scenes = {}
        for size in sizes:
            cell = 250 if size % 250 == 0 else 256
            cells = max(1, size // cell)
            scenes[size] = synthetic.write_scene(Path(tmp) / f"scene_{size}.tif", rows=cells, cols=cells, cell=cell,
                                                 nodata_cols=0).path
        per_band = {}
        if not args.no_per_band:  # the same pixels, one GeoTIFF per band (10 m bands)
            for size, path in scenes.items():
                folder = Path(tmp) / f"bands_{size}"
                synthetic_deliveries.write_band_files(path, folder, prefix=f"T33TWM_{size}", coarse=())
                per_band[size] = find_scene_sources([folder])[0]
        for size, path in scenes.items():  # tiling memory, one scene at a time
            tracemalloc.start()
            count = sum(1 for _ in iter_tiles(path, config.bands, spec, config.scaling, config.stretcher))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            result.memory_mb[f"tiling_peak_{size}px"] = peak / 2**20
            result.metrics[f"tiles_{size}px"] = float(count)
            if size in per_band:
                tracemalloc.start()
                count = sum(1 for _ in iter_tiles(per_band[size], config.bands, spec, config.scaling,
                                                  config.stretcher))
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                result.memory_mb[f"per_band_tiling_peak_{size}px"] = peak / 2**20
                result.metrics[f"per_band_tiles_{size}px"] = float(count)
        size = args.throughput_size or min(sizes)
        largest = scenes[size] if size in scenes else synthetic.write_scene(
            Path(tmp) / "throughput" / f"scene_{size}.tif", rows=size // 250, cols=size // 250, cell=250,
            nodata_cols=0).path
        result.params["throughput_size"] = size
        bands_scene = per_band.get(size)
        mixed_scene = None
        if not args.no_per_band:  # plus B11 at 20 m: B04,B03,B11 upsampled onto the 10 m grid as read
            synthetic_deliveries.write_band_files(largest, Path(tmp) / "bands_tp", prefix="T33TWM_tp",
                                                  coarse=("B11",))
            mixed_scene = find_scene_sources([Path(tmp) / "bands_tp"])[0]
            bands_scene = bands_scene or mixed_scene
        # stacked and per-band alternate (stacked, bands, stacked, bands): load drifts hit both alike
        for rep in range(2):
            start = time.perf_counter()
            reads = sum(1 for _ in iter_tiles(largest, config.bands, spec, config.scaling, config.stretcher))
            result.timings_s[f"tiling_only_{rep}"] = time.perf_counter() - start
            if bands_scene is not None:
                start = time.perf_counter()
                sum(1 for _ in iter_tiles(bands_scene, config.bands, spec, config.scaling, config.stretcher))
                result.timings_s[f"per_band_tiling_only_{rep}"] = time.perf_counter() - start
            if mixed_scene is not None:
                start = time.perf_counter()
                sum(1 for _ in iter_tiles(mixed_scene, ["B04", "B03", "B11"], spec, config.scaling, config.stretcher))
                result.timings_s[f"mixed_10_20m_tiling_only_{rep}"] = time.perf_counter() - start
        result.timings_s["tiling_only"] = min(result.timings_s.pop(f"tiling_only_{r}") for r in range(2))
        result.metrics["tiling_tiles_per_s"] = reads / result.timings_s["tiling_only"]
        if bands_scene is not None:
            result.timings_s["per_band_tiling_only"] = min(result.timings_s.pop(f"per_band_tiling_only_{r}")
                                                           for r in range(2))
            result.metrics["per_band_tiling_tiles_per_s"] = reads / result.timings_s["per_band_tiling_only"]
        if mixed_scene is not None:
            result.timings_s["mixed_10_20m_tiling_only"] = min(result.timings_s.pop(f"mixed_10_20m_tiling_only_{r}")
                                                               for r in range(2))
            result.metrics["mixed_10_20m_tiling_tiles_per_s"] = reads / result.timings_s["mixed_10_20m_tiling_only"]
        start = time.perf_counter()
        _, _, tiles, _ = embed_scene_tiles(clip, [largest], Path(tmp) / "shards", config, process_index=0,
                                           num_processes=1)
        result.timings_s["pipeline"] = time.perf_counter() - start
        if bands_scene is not None:
            start = time.perf_counter()
            _, _, band_tiles, _ = embed_scene_tiles(clip, [bands_scene], Path(tmp) / "band_shards", config,
                                                    process_index=0, num_processes=1)
            result.timings_s["per_band_pipeline"] = time.perf_counter() - start
            result.metrics["per_band_pipeline_tiles_per_s"] = band_tiles / result.timings_s["per_band_pipeline"]
        if not args.no_torchgeo:
            seconds, count = _torchgeo_tiles_per_s(largest, clip, args.tile, args.batch, args.workers)
            result.timings_s["torchgeo_pipeline"] = seconds
            result.metrics["torchgeo_tiles_per_s"] = count / seconds
        first = []  # the baseline holds at most --baseline-tiles tiles in memory
        for tile in iter_tiles(largest, config.bands, spec, config.scaling, config.stretcher):
            first.append(torch.from_numpy(tile.pixels))
            if len(first) == args.baseline_tiles:
                break
        pixels = torch.stack(first)
        prepared = model_input(pixels, clip)
        start = time.perf_counter()
        for i in range(0, len(prepared), args.batch):
            clip.encode_image_tensor(prepared[i:i + args.batch])
        if clip.device.type == "cuda":
            torch.cuda.synchronize(clip.device)
        result.timings_s["encoder_only"] = time.perf_counter() - start
    result.metrics["pipeline_tiles_per_s"] = tiles / result.timings_s["pipeline"]
    result.metrics["encoder_tiles_per_s"] = len(prepared) / result.timings_s["encoder_only"]
    result.ratios["pipeline_over_encoder"] = result.metrics["pipeline_tiles_per_s"] / result.metrics[
        "encoder_tiles_per_s"]
    if "torchgeo_tiles_per_s" in result.metrics:
        result.ratios["ours_over_torchgeo"] = result.metrics["pipeline_tiles_per_s"] / result.metrics[
            "torchgeo_tiles_per_s"]
    peaks = [result.memory_mb[f"tiling_peak_{s}px"] for s in sizes]
    result.checks["throughput_ratio>=0.8"] = result.ratios["pipeline_over_encoder"] >= 0.8
    result.checks["tiling_memory_flat"] = max(peaks) <= 1.5 * min(peaks)
    if "per_band_pipeline_tiles_per_s" in result.metrics:
        result.ratios["per_band_over_stacked_pipeline"] = result.metrics["per_band_pipeline_tiles_per_s"] / \
            result.metrics["pipeline_tiles_per_s"]
        result.ratios["per_band_over_stacked_tiling"] = result.metrics["per_band_tiling_tiles_per_s"] / \
            result.metrics["tiling_tiles_per_s"]
    if "mixed_10_20m_tiling_tiles_per_s" in result.metrics:
        result.ratios["mixed_10_20m_over_stacked_tiling"] = result.metrics["mixed_10_20m_tiling_tiles_per_s"] / \
            result.metrics["tiling_tiles_per_s"]
        result.checks["per_band_pipeline_ratio>=0.8"] = result.ratios["per_band_over_stacked_pipeline"] >= 0.8
        band_peaks = [result.memory_mb[f"per_band_tiling_peak_{s}px"] for s in sizes if s in per_band]
        result.checks["per_band_tiling_memory_flat"] = max(band_peaks) <= 1.5 * min(band_peaks)
    result.notes.append("wall times, one run each; the machine is shared, so the ratio is noisy")
    return result
