"""The benchmark harness runs end to end on a trivial size (keeps shared/bench from rotting)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"


@pytest.fixture()
def harness():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))
    try:
        import harness as module

        yield module
    finally:
        sys.path.remove(str(BENCH))


def test_index_benchmark_tiny_run(harness, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    args = ["--n", "3000", "--dim", "16", "--centres", "12", "--queries", "20", "--single", "3",
            "--nprobes", "1,8", "--nlist", "20"]
    [result] = harness.run_benchmarks(["index"], args, tmp_path)
    saved = json.loads((tmp_path / "index.json").read_text())
    assert saved["machine"]["nproc"] >= 1 and saved["benchmark"] == "index"
    for data in ("clustered", "uniform"):
        recall = saved["metrics"][f"{data}/ivf@nprobe8_recall@10"]
        assert 0.0 <= recall <= 1.0
        assert saved["ratios"][f"{data}/ivf@nprobe1_speedup_batch"] > 0
    # on clustered data 8 of 20 cells find nearly all true neighbours
    assert result.metrics["clustered/ivf@nprobe8_recall@10"] >= 0.9


def test_embed_benchmark_writes_distinct_jpegs(harness, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    module = harness._load(BENCH / "bench_embed.py")
    paths = module.write_jpegs(tmp_path, 3, 32)
    assert [p.suffix for p in paths] == [".jpg"] * 3
    assert len({p.read_bytes() for p in paths}) == 3


def test_unknown_benchmark_is_refused(harness) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit, match="unknown benchmark"):
        harness.run_benchmarks(["nope"], [], None)


def test_trainer_benchmark_baseline_trains_like_the_trainer(harness, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The old loop kept in bench_trainer.py is a faithful baseline: on one CPU process in fp32 it ends
    with the same weights as the Trainer on the same batches."""
    import torch

    from clipsuite.core.contrastive import ContrastiveConfig
    from clipsuite.core.models import load_model
    from clipsuite.core.train import TrainConfig, Trainer

    module = harness._load(BENCH / "bench_trainer.py")
    weights = []
    for kind in ("old", "new"):
        torch.manual_seed(0)
        clip = load_model("tiny", device="cpu")
        task = module.TimedTask(clip, ContrastiveConfig())
        loader = torch.utils.data.DataLoader(module.Pairs(12, clip.image_size, clip.context_length, 100), batch_size=4)
        cfg = TrainConfig(output_dir=tmp_path / kind, max_steps=3, batch_size=4, lr=1e-3, schedule="constant",
                          precision="fp32", checkpoint_every=0, progress=False)
        if kind == "old":
            module.old_loop(task, loader, cfg, torch.device("cpu"))
        else:
            Trainer(task, cfg).fit(loader)
        assert len(task.stamps) == 3
        weights.append({k: v.detach().clone() for k, v in clip.model.state_dict().items()})
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
