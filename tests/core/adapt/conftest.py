"""Fixtures for the adaptation tests: a coloured-shapes Dassl split and a tiny CLIP briefly trained on it.

The quick contrastive pre-training makes zero-shot better than chance but imperfect, so that a learner
has room to improve it (swap for the shared ``pretrained_tiny`` fixture once tests/conftest.py has it).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from clipsuite.core.models import ClipModel, load_model
from clipsuite.core.synthetic import write_shapes_dataset, write_shapes_split

torch.set_num_threads(1)  # the test machine's cores are shared: one thread each is much faster than two


def quick_pretrain(clip: ClipModel, csv_path: Path, steps: int = 50, seed: int = 0, batch_size: int = 32,
                   lr: float = 5e-4) -> ClipModel:
    """A few contrastive steps on "a photo of a {class}." captions (CLIP loss with same-class captions
    as shared positives), in place. 60 steps leave zero-shot around 30 % on 12 classes."""
    torch.manual_seed(seed)
    rows = list(csv.DictReader(Path(csv_path).read_text().splitlines()))
    pixels = clip.preprocess_images([csv_path.parent / r["filepath"] for r in rows])
    tokens = clip.tokenize([f"a photo of a {r['class_name']}." for r in rows])
    labels = torch.tensor([int(r["label"]) for r in rows])
    model = clip.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    for _ in range(steps):
        index = torch.randint(0, len(rows), (batch_size,))
        image = torch.nn.functional.normalize(model.encode_image(pixels[index]), dim=-1)
        text = torch.nn.functional.normalize(model.encode_text(tokens[index]), dim=-1)
        logits = model.logit_scale.exp() * image @ text.T
        same = (labels[index][:, None] == labels[index][None]).float()
        target = same / same.sum(dim=1, keepdim=True)
        loss = (torch.nn.functional.cross_entropy(logits, target)
                + torch.nn.functional.cross_entropy(logits.T, target)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return clip


@pytest.fixture(scope="session")
def shapes_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes-split")
    return write_shapes_split(root, {"train": 16, "val": 4, "test": 8}, seed=3)


@pytest.fixture(scope="session")
def _pretrain_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes-captions"), n=480, seed=11)


@pytest.fixture(scope="session")
def adapt_tiny(_pretrain_csv: Path) -> ClipModel:
    torch.manual_seed(0)
    return quick_pretrain(load_model("tiny", device="cpu"), _pretrain_csv, steps=60)
