"""Two processes on the CPU (gloo, environment as torchrun sets it): the sharded scene index equals the
one-process index, and the training loss (gathered contrastive negatives, all-reduced DINO centre,
crops drawn for the global batch) gives the loss and gradients of one process on the whole batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from clipsuite.core.checkpoints import load_tensors
from clipsuite.core.embed import read_shards
from clipsuite.core.index_store import IndexStore
from clipsuite.remote import synthetic

SCRIPT = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    import torch
    import torch.distributed as dist
    from safetensors.torch import save_file
    from clipsuite.core.models import load_model
    from clipsuite.remote.data import MultilingualPairs, read_captioned
    from clipsuite.remote.scenes import SceneIndexConfig, build_scene_index
    from clipsuite.remote.tiling import TileSpec
    from clipsuite.remote.train import RemoteTrainConfig, RemoteTrainTask

    torch.set_num_threads(1)
    root, port = Path(sys.argv[1]), sys.argv[2]
    CONFIG = SceneIndexConfig(bands=["B04", "B03", "B02"], tile=TileSpec(size=32), num_workers=0, progress=False,
                              batch_size=4)
    LANGS = ("en", "zh", "ru")
    torch.manual_seed(0)
    clip = load_model("tiny-multilingual", device="cpu", precision="fp32")
    data = read_captioned(root / "captions" / "dataset_rsicd.json", clip, "train", LANGS,
                          root / "captions" / "translations.jsonl")
    settings = RemoteTrainConfig(languages=LANGS, distill_weight=1.0, local_crops=2, head_hidden=64,
                                 head_bottleneck=32, head_out=128)
    task = RemoteTrainTask(clip, data, settings, seed=3)
    pairs = MultilingualPairs(data)
    # 8 items, two per image of four images: captions repeat, so the soft targets matter
    batch = task.collate([pairs[i] for i in (0, 5, 7, 12, 1, 13, 6, 18)])

    def loss_and_grads(part):
        out = task.loss(part)
        out["loss"].backward()
        result = {k: v.detach().reshape(1) for k, v in out.items() if k in ("loss", "contrastive", "distill")}
        for name, param in task.module.named_parameters():
            if param.grad is not None:
                result["grad." + name] = param.grad
        result["center"] = task.module.center.clone()
        return result

    def worker(rank):
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        build_scene_index(clip, [root / "scenes"], root / "two" / "index", CONFIG, model_spec="tiny-multilingual")
        assert dist.is_initialized() and dist.get_world_size() == 2
        half = {k: v[4 * rank:4 * rank + 4] for k, v in batch.items()}
        result = loss_and_grads(half)
        for key, value in result.items():  # what DDP does: average gradients (and we the logged losses)
            if key != "center":
                dist.all_reduce(value)
                value /= 2
        if rank == 0:
            save_file({k: v.contiguous() for k, v in result.items()}, str(root / "two.safetensors"))
        # the centre is all-reduced, so it is the same on both processes
        parts = [torch.empty_like(result["center"]) for _ in range(2)]
        dist.all_gather(parts, result["center"])
        os.write(1, f"DONE {rank} same_center={bool(torch.equal(parts[0], parts[1]))}\\n".encode())

    if __name__ == "__main__":
        import torch._dynamo  # noqa: F401  (imported lazily and slowly otherwise: once, before forking)
        import torch.multiprocessing as mp
        mp.start_processes(worker, nprocs=2, start_method="fork")
        # the same work in this one process: the whole index, the whole batch
        build_scene_index(clip, [root / "scenes"], root / "one" / "index", CONFIG, model_spec="tiny-multilingual",
                          process_index=0, num_processes=1)
        one = loss_and_grads(batch)
        save_file({k: v.contiguous() for k, v in one.items()}, str(root / "one.safetensors"))
''')


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multiprocess")
    cells = [[None, "solar_farm", "forest"], ["river", "desert", "solar_farm"]]
    synthetic.write_scene(root / "scenes" / "a.tif", rows=2, cols=3, cell=32, cells=cells)
    synthetic.write_scene(root / "scenes" / "b.tif", rows=2, cols=2, cell=32, seed=4,
                          cells=[["forest", "farmland"], ["residential", "river"]])
    synthetic.write_captions(root / "captions", per_class=2, size=64)
    script = root / "run.py"
    script.write_text(SCRIPT)
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    proc = subprocess.run([sys.executable, str(script), str(root), port], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("same_center=True") == 2, proc.stdout
    return root


def _by_tile(folder: Path) -> dict[str, np.ndarray]:
    shards = read_shards(folder)
    return {row["id"]: vector for row, vector in zip(shards.metadata(), shards.embeddings())}


def test_two_process_index_equals_the_one_process_index(runs):
    two_shards = sorted(p.name for p in (runs / "two" / "index.shards").glob("*.safetensors"))
    assert two_shards == ["shard-00000-of-00002.safetensors", "shard-00001-of-00002.safetensors"]
    one, two = _by_tile(runs / "one" / "index.shards"), _by_tile(runs / "two" / "index.shards")
    assert len(one) == 9 and sorted(one) == sorted(two)  # 6 + 4 cells, one of them nodata
    for tile, vector in one.items():
        np.testing.assert_allclose(two[tile], vector, atol=1e-5)
    a, b = IndexStore.open(runs / "one" / "index"), IndexStore.open(runs / "two" / "index")
    rows_a, rows_b = a.metadata.rows(np.arange(len(a))), b.metadata.rows(np.arange(len(b)))
    assert sorted(json.dumps(m, sort_keys=True) for m in rows_a) == \
        sorted(json.dumps(m, sort_keys=True) for m in rows_b)
    query = torch.nn.functional.normalize(torch.randn(3, a.dim, generator=torch.Generator().manual_seed(1)), dim=-1)
    (sa, ra), (sb, rb) = a.search(query, k=len(a)), b.search(query, k=len(b))
    ids_a = [[m["id"] for m in line] for line in a.rows_metadata(ra)]
    assert ids_a == [[m["id"] for m in line] for line in b.rows_metadata(rb)]
    np.testing.assert_allclose(sa, sb, atol=1e-5)
    scenes_one = json.loads((runs / "one" / "index" / "scenes.json").read_text())
    scenes_two = json.loads((runs / "two" / "index" / "scenes.json").read_text())
    assert scenes_one["skipped_nodata"] == scenes_two["skipped_nodata"] == 1


def test_two_process_training_loss_and_gradients_equal_one_process_on_the_whole_batch(runs):
    one, two = load_tensors(runs / "one.safetensors"), load_tensors(runs / "two.safetensors")
    assert set(one) == set(two)
    grads = [k for k in one if k.startswith("grad.")]
    # both towers, the logit scale and the projector head get gradients
    assert any(".head." in k or k.startswith("grad.head.") for k in grads) and "grad.model.logit_scale" in grads
    for key in ("loss", "contrastive", "distill"):
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)
    for key in grads:
        torch.testing.assert_close(two[key], one[key], rtol=1e-3, atol=1e-6, msg=key)
    torch.testing.assert_close(two["center"], one["center"], rtol=1e-4, atol=1e-6)
    assert one["center"].abs().sum() > 0
