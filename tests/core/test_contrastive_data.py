"""train_contrastive's inputs: a file, pairs held in memory and a torch Dataset train the same weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from clipsuite.core.contrastive import train_contrastive
from clipsuite.core.errors import InputError
from clipsuite.core.models import load_model
from clipsuite.core.synthetic import write_shapes_dataset
from clipsuite.core.tabular import read_table

torch.set_num_threads(1)  # shared CPUs: one thread each is faster
COMMON: dict[str, Any] = {"model": "tiny", "augment": False, "max_steps": 2, "batch_size": 4, "lr": 1e-3,
                          "progress": False, "checkpoint_every": 10**9}


class Listed(Dataset):
    def __init__(self, items: list[tuple[Any, str]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, str]:
        return self.items[index]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], list[str]]:
    csv_path = write_shapes_dataset(tmp_path_factory.mktemp("shapes"), n=8, seed=1, image_size=32)
    records = list(read_table(csv_path))
    return csv_path, [csv_path.parent / r.text("filepath") for r in records], [r.text("title") for r in records]


def _weights(result: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in result.model.model.state_dict().items()}


def test_pairs_and_datasets_train_the_same_weights_as_the_file(shapes, tmp_path: Path) -> None:
    csv_path, paths, captions = shapes
    from_file = _weights(train_contrastive(csv_path, tmp_path / "file", **COMMON))
    preprocess = load_model("tiny", device="cpu").preprocess
    sources = {
        "pil-pairs": [(Image.open(p), c) for p, c in zip(paths, captions)],
        "path-pairs": [(str(p), c) for p, c in zip(paths, captions)],
        "dataset": Listed([(p, c) for p, c in zip(paths, captions)]),
        "tensor-dataset": Listed([(preprocess(Image.open(p).convert("RGB")), c) for p, c in zip(paths, captions)]),
    }
    initial = load_model("tiny", device="cpu").model.state_dict()
    assert any(not torch.equal(initial[k], from_file[k]) for k in from_file)  # training moved the weights
    for name, source in sources.items():
        weights = _weights(train_contrastive(source, tmp_path / name, **COMMON))
        for key in from_file:
            assert torch.equal(weights[key], from_file[key]), f"{name}: {key} differs"


def test_dataset_holdout_is_evaluated(shapes, tmp_path: Path) -> None:
    _, paths, captions = shapes
    result = train_contrastive(Listed(list(zip(paths, captions))), tmp_path / "run", holdout=0.25,
                               **{**COMMON, "max_steps": None, "epochs": 1})
    assert result.train.step == 2  # 6 training pairs in batches of 4, the last one partial
    assert set(result.train.metrics) >= {"eval/i2t_R@1", "eval/t2i_R@1", "eval/mean_recall"}


def test_bad_in_memory_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"pair 1: the image must be a path or a PIL image, got int"):
        train_contrastive([(Image.new("RGB", (8, 8)), "a"), (3, "b")], tmp_path / "a", **COMMON)
    with pytest.raises(InputError, match=r"pair 0: empty caption"):
        train_contrastive([(Image.new("RGB", (8, 8)), " ")], tmp_path / "b", **COMMON)
    with pytest.raises(InputError, match=r"dataset item \d: expected \(image, caption\), got str"):
        train_contrastive(Listed(["just a caption"] * 4), tmp_path / "c", **COMMON)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # failed fresh runs leave no folder
