"""The contrastive task: same loss as open_clip on the model's outputs, locked towers, logit-scale
clamp, gradient checkpointing, and train_contrastive end to end (held-out recall, saved model)."""

from __future__ import annotations

import math

import open_clip
import pytest
import torch
from open_clip.loss import SigLipLoss as OpenClipSigLipLoss

from clipsuite.core.contrastive import ContrastiveConfig, ContrastiveTask, train_contrastive
from clipsuite.core.errors import InputError
from clipsuite.core.models import load_model
from clipsuite.core.synthetic import write_shapes_dataset
from clipsuite.core.train import TrainConfig, Trainer, read_metrics

torch.set_num_threads(1)  # shared CPUs: one thread each is faster


def _batch(clip, n: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    captions = ["a red circle", "a blue square", "a green triangle", "a yellow circle"][:n]
    return {"image": torch.randn(n, 3, clip.image_size, clip.image_size, generator=g), "text": clip.tokenizer(captions)}


@pytest.mark.parametrize("loss", ["clip", "siglip"])
def test_task_loss_equals_open_clip_on_the_model_outputs(loss):
    torch.manual_seed(0)
    clip = load_model("tiny", device="cpu")
    task = ContrastiveTask(clip, ContrastiveConfig(loss=loss))
    batch = _batch(clip)
    ours = task.loss(batch)["loss"]
    outputs = clip.model(batch["image"], batch["text"])
    if loss == "clip":
        expected = open_clip.ClipLoss()(*outputs[:3])
    else:
        assert len(outputs) == 4  # open_clip now returns the bias we registered
        expected = OpenClipSigLipLoss()(*outputs)
        assert clip.config["model_cfg"]["init_logit_bias"] == -10.0
    torch.testing.assert_close(ours, expected)


def test_locked_towers_and_logit_scale_clamp():
    clip = load_model("tiny", device="cpu")
    task = ContrastiveTask(clip, ContrastiveConfig(lock_text=True))
    model = task.module
    assert all(p.requires_grad for p in model.visual.parameters())
    assert not model.token_embedding.weight.requires_grad and not model.text_projection.requires_grad
    assert not any(p.requires_grad for p in model.transformer.parameters())
    assert model.logit_scale.requires_grad
    with torch.no_grad():
        model.logit_scale.fill_(9.0)
    task.after_step()
    assert float(model.logit_scale.detach()) == pytest.approx(math.log(100))
    locked = ContrastiveTask(load_model("tiny", device="cpu"), ContrastiveConfig(lock_image=True))
    assert not any(p.requires_grad for p in locked.module.visual.parameters())
    with pytest.raises(InputError, match="unknown loss"):
        ContrastiveConfig(loss="triplet")


@pytest.mark.parametrize("tower, frozen, trained", [("image", "visual_projection", "text_projection"),
                                                    ("text", "text_projection", "visual_projection")])
def test_locking_a_transformers_tower_freezes_its_projection(tower, frozen, trained):
    clip = load_model("tiny-transformers", device="cpu")
    task = ContrastiveTask(clip, ContrastiveConfig(**{f"lock_{tower}": True}))
    hf = task.module.hf
    locked = hf.vision_model if tower == "image" else hf.text_model
    assert not any(p.requires_grad for p in locked.parameters())
    assert not any(p.requires_grad for p in getattr(hf, frozen).parameters())
    assert all(p.requires_grad for p in getattr(hf, trained).parameters()) and hf.logit_scale.requires_grad


def test_gradient_checkpointing_gives_the_same_weights(tmp_path):
    weights = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        clip = load_model("tiny", device="cpu")
        task = ContrastiveTask(clip)
        data = [{k: v[i] for k, v in _batch(clip).items()} for i in range(4)]
        cfg = TrainConfig(output_dir=tmp_path / str(checkpointing), max_steps=2, batch_size=4, lr=1e-3,
                          grad_checkpointing=checkpointing, progress=False)
        Trainer(task, cfg).fit(data)
        assert clip.model.visual.transformer.grad_checkpointing is checkpointing
        weights.append({k: v.detach().clone() for k, v in clip.model.state_dict().items()})
    for key in weights[0]:
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=1e-5, atol=1e-6)


def test_train_contrastive_end_to_end(tmp_path):
    csv_path = write_shapes_dataset(tmp_path / "data", n=20, seed=1, image_size=32)
    result = train_contrastive(csv_path, tmp_path / "model", "tiny", holdout=0.2, augment=False, epochs=4,
                               batch_size=8, lr=2e-3, progress=False, log_every=1)
    metrics = read_metrics(result.output_dir)
    losses = [m["loss"] for m in metrics if "loss" in m]
    evals = [m for m in metrics if "eval/mean_recall" in m]
    assert len(losses) == 8 and len(evals) == 4  # 16 training pairs / 8 per step, 4 epochs
    assert losses[-1] < losses[0]
    assert all(0.0 <= m["eval/mean_recall"] <= 1.0 for m in evals)
    reloaded = load_model(str(result.output_dir))
    texts = ["a red circle on the left", "a blue square at the top"]
    torch.testing.assert_close(reloaded.encode_texts(texts), result.model.encode_texts(texts))
    with pytest.raises(InputError, match="already holds a training run"):
        train_contrastive(csv_path, tmp_path / "model", "tiny", progress=False)
