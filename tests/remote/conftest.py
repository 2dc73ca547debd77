from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipsuite.remote import synthetic

# one thread: spin-waiting OpenMP threads on shared CPUs slow small models down many times over
torch.set_num_threads(1)



@pytest.fixture(scope="session")
def scene(tmp_path_factory) -> synthetic.SceneLayout:
    """3 x 4 cells of 64 px; the first column of cells is nodata."""
    return synthetic.write_scene(tmp_path_factory.mktemp("scene") / "scene.tif", rows=3, cols=4, cell=64)


@pytest.fixture(scope="session")
def captions(tmp_path_factory) -> tuple[Path, Path]:
    return synthetic.write_captions(tmp_path_factory.mktemp("rsicd"), per_class=3, size=64)


@pytest.fixture(scope="session")
def train_captions(tmp_path_factory) -> tuple[Path, Path]:
    """6 images per class (4 train, 2 test), 64 px, captions in 8 languages."""
    return synthetic.write_captions(tmp_path_factory.mktemp("rsicd_train"), per_class=6, size=64)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, train_captions):
    """``tiny-multilingual`` after 30 steps of multilingual contrastive training (all 8 languages;
    ~0.6 s a step at batch 24 on a loaded CPU), shared by the recall and the scene-search tests."""
    from clipsuite.remote.train import RemoteTrainConfig, TrainingData, train_remote

    caps, translations = train_captions
    return train_remote(TrainingData(caps, split="train", eval_split="test", translations=translations),
                        tmp_path_factory.mktemp("trained") / "model",
                        settings=RemoteTrainConfig(languages=synthetic.LANGUAGES, augment=False),
                        max_steps=30, batch_size=24, lr=2e-3, warmup_steps=10, schedule="constant",
                        progress=False)
