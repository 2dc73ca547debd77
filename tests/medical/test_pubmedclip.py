"""PubMedCLIP-style contrastive fine-tuning on a ROCO-layout CSV, through the core's contrastive task."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipsuite.core.errors import InputError
from clipsuite.core.losses import clip_loss
from clipsuite.core.models import ClipModel, load_model
from clipsuite.medical import synthetic
from clipsuite.medical.train import read_roco, train_pubmedclip


def test_roco_fine_tuning_writes_a_loadable_model(tmp_path: Path) -> None:
    csv_path = synthetic.write_roco(tmp_path / "roco", n=8)
    pairs = read_roco(csv_path)
    assert len(pairs) == 8 and pairs[0][0].parent.name == "images" and pairs[0][1].startswith("ct of the")
    before = load_model("tiny", device="cpu")
    torch.manual_seed(0)
    result = train_pubmedclip(csv_path, tmp_path / "pubmedclip", model="tiny", pretrained=None, max_steps=5,
                              batch_size=4, lr=1e-3, progress=False, checkpoint_every=10**9)
    tuned = load_model(str(result.output_dir), device="cpu")
    assert result.train.step == 5 and tuned.embed_dim == before.embed_dim
    # the saved weights are the trained ones: moved from the start, towards the training pairs
    old, new = before.model.state_dict(), tuned.model.state_dict()
    assert old.keys() == new.keys()
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("visual."))
    assert any(not torch.equal(old[k], new[k]) for k in old if not k.startswith("visual.") and k != "logit_scale")
    assert _pair_loss(tuned, pairs) < _pair_loss(before, pairs) - 0.01


def _pair_loss(clip: ClipModel, pairs: list[tuple[Path, str]]) -> float:
    """The CLIP contrastive loss over all the training pairs at once, at the model's own temperature."""
    images = clip.encode_images([p for p, _ in pairs])
    texts = clip.encode_texts([t for _, t in pairs])
    return float(clip_loss(images, texts, clip.logit_scale()))


def test_roco_bad_rows(tmp_path: Path) -> None:
    csv_path = synthetic.write_roco(tmp_path, n=2)
    (tmp_path / "images" / "ROCO_00001.jpg").unlink()
    with pytest.raises(InputError, match="line 3: image 'ROCO_00001.jpg' not found"):
        read_roco(csv_path)
    (tmp_path / "other.csv").write_text("id,file\n1,a.jpg\n")
    with pytest.raises(InputError, match=r"other.csv line 1: no column 'name' \(columns: id, file\)"):
        read_roco(tmp_path / "other.csv")
