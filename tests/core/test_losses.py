"""Losses: equality with open_clip (one process and two gloo processes), focal, dice, distillation."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import textwrap

import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import SigLipLoss as OpenClipSigLipLoss
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss

from clipsuite.core.checkpoints import load_tensors
from clipsuite.core.losses import (
    ClipLoss,
    SigLipLoss,
    clip_loss,
    dice_loss,
    distillation_loss,
    focal_loss,
    same_caption_targets,
    siglip_loss,
    sigmoid_focal_loss,
    soft_clip_loss,
)

torch.set_num_threads(1)  # shared CPUs: one thread each is faster


def _features(n: int = 6, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(n, d, generator=g), dim=-1),
            F.normalize(torch.randn(n, d, generator=g), dim=-1))


def _loss_and_grads(fn, images, texts, *args):
    images, texts = images.clone().requires_grad_(True), texts.clone().requires_grad_(True)
    loss = fn(images, texts, *args)
    loss.backward()
    return loss.detach(), images.grad, texts.grad


@pytest.mark.parametrize("bias", [None, -1.5])
def test_clip_loss_equals_open_clip(bias):
    images, texts = _features()
    scale = torch.tensor(14.3)
    ours = _loss_and_grads(lambda i, t: ClipLoss()(i, t, scale, bias), images, texts)
    ref = _loss_and_grads(lambda i, t: open_clip.ClipLoss()(i, t, scale, bias), images, texts)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)


def test_siglip_loss_equals_open_clip():
    images, texts = _features(n=5)
    scale, bias = torch.tensor(10.0), torch.tensor(-10.0)
    ours = _loss_and_grads(lambda i, t: SigLipLoss()(i, t, scale, bias), images, texts)
    ref = _loss_and_grads(lambda i, t: OpenClipSigLipLoss()(i, t, scale, bias), images, texts)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)


def test_clip_loss_is_low_for_matching_pairs():
    images, _ = _features()
    assert clip_loss(images, images, 100.0) < 0.01 < clip_loss(images, images.flip(0), 100.0)


# Two gloo processes on the CPU, each holding half of a global batch of 8.
DIST_SCRIPT = textwrap.dedent('''
    import importlib.util, os, sys
    from pathlib import Path
    import torch, torch.distributed as dist, torch.nn.functional as F
    import torch.multiprocessing as mp
    from safetensors.torch import save_file
    from clipsuite.core.losses import clip_loss, siglip_loss

    # open_clip's own loss.py, loaded alone (importing the whole package costs a minute on a busy CPU)
    source = Path(importlib.util.find_spec("open_clip").submodule_search_locations[0]) / "loss.py"
    spec = importlib.util.spec_from_file_location("open_clip_loss", source)
    ref_loss = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref_loss)

    def worker(rank, out):
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[2])
        dist.init_process_group("gloo", rank=rank, world_size=2)
        g = torch.Generator().manual_seed(0)
        images = F.normalize(torch.randn(8, 16, generator=g), dim=-1)[4 * rank:4 * rank + 4]
        texts = F.normalize(torch.randn(8, 16, generator=g), dim=-1)[4 * rank:4 * rank + 4]
        result = {}
        cases = {
            "clip": lambda i, t: clip_loss(i, t, 14.3),
            "clip_ref": lambda i, t: ref_loss.ClipLoss(local_loss=True, gather_with_grad=True, rank=rank,
                                                        world_size=2)(i, t, 14.3),
            "clip_global": lambda i, t: clip_loss(i, t, 14.3, local_loss=False, gather_with_grad=False),
            "siglip": lambda i, t: siglip_loss(i, t, 10.0, -10.0),
            "siglip_ref": lambda i, t: ref_loss.SigLipLoss(rank=rank, world_size=2, dist_impl="bidir")(
                i, t, 10.0, -10.0),
        }
        for name, fn in cases.items():
            i, t = images.clone().requires_grad_(True), texts.clone().requires_grad_(True)
            loss = fn(i, t)
            loss.backward()
            result[f"{name}.loss"] = loss.detach().reshape(1)
            result[f"{name}.gi"] = i.grad
            result[f"{name}.gt"] = t.grad
        save_file(result, os.path.join(out, f"rank{rank}.safetensors"))
        dist.destroy_process_group()

    if __name__ == "__main__":
        mp.start_processes(worker, args=(sys.argv[1],), nprocs=2, start_method="fork")
''')


def test_distributed_losses_match_open_clip_and_the_global_batch(tmp_path):
    script = tmp_path / "dist.py"
    script.write_text(DIST_SCRIPT)
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), port], capture_output=True, text=True,
                          check=False, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranks = [load_tensors(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    for res in ranks:  # same numbers as open_clip's distributed implementations
        for key in ("loss", "gi", "gt"):
            torch.testing.assert_close(res[f"clip.{key}"], res[f"clip_ref.{key}"])
            torch.testing.assert_close(res[f"siglip.{key}"], res[f"siglip_ref.{key}"])
    g = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(8, 16, generator=g), dim=-1)
    texts = F.normalize(torch.randn(8, 16, generator=g), dim=-1)
    for name, fn in (("clip", lambda i, t: clip_loss(i, t, 14.3)),
                     ("siglip", lambda i, t: siglip_loss(i, t, 10.0, -10.0))):
        loss, gi, gt = _loss_and_grads(fn, images, texts)
        # gradient averaging over processes (what the Trainer does) gives the global batch's gradient
        torch.testing.assert_close((ranks[0][f"{name}.loss"] + ranks[1][f"{name}.loss"]).squeeze() / 2, loss)
        torch.testing.assert_close(torch.cat([ranks[0][f"{name}.gi"], ranks[1][f"{name}.gi"]]) / 2, gi)
        torch.testing.assert_close(torch.cat([ranks[0][f"{name}.gt"], ranks[1][f"{name}.gt"]]) / 2, gt)
    # without local loss every process computes the whole global loss
    for res in ranks:
        torch.testing.assert_close(res["clip_global.loss"].squeeze(), clip_loss(images, texts, 14.3))


def test_sigmoid_focal_loss_equals_torchvision():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 1, 8, 8, generator=g)
    target = (torch.rand(4, 1, 8, 8, generator=g) > 0.7).float()
    torch.testing.assert_close(sigmoid_focal_loss(logits, target),
                               tv_sigmoid_focal_loss(logits, target, reduction="mean"))


def test_focal_loss_reduces_to_cross_entropy_at_gamma_zero_and_down_weights_easy_pixels():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 2, 5, 5, generator=g)
    target = torch.randint(0, 2, (3, 5, 5), generator=g)
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target))
    assert focal_loss(logits, target, gamma=2.0) < F.cross_entropy(logits, target)
    weights = torch.tensor([0.25, 0.75])
    manual = (F.cross_entropy(logits, target, reduction="none") * weights[target]).mean()
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0, alpha=weights), manual)


def test_dice_loss():
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1
    assert dice_loss(mask, mask, smooth=0.0) == pytest.approx(0.0)
    assert dice_loss(1 - mask, mask, smooth=0.0) == pytest.approx(1.0)
    half = torch.full_like(mask, 0.5)  # |P∩T| = 4, |P| = 8, |T| = 8 per sample
    assert dice_loss(half, mask, smooth=1.0) == pytest.approx(1 - 9 / 17)
    with pytest.raises(ValueError, match="unknown reduction"):
        dice_loss(half, mask, reduction="avg")


def test_distillation_loss():
    g = torch.Generator().manual_seed(3)
    student, teacher = torch.randn(4, 7, generator=g, requires_grad=True), torch.randn(4, 7, generator=g)
    assert distillation_loss(teacher, teacher) == pytest.approx(0.0, abs=1e-6)
    t = 2.0
    p = F.softmax(teacher / t, dim=-1)
    manual = (p * (p.log() - F.log_softmax(student / t, dim=-1))).sum(-1).mean() * t * t
    loss = distillation_loss(student, teacher, temperature=t)
    torch.testing.assert_close(loss, manual)
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_soft_clip_loss_with_shared_positives():
    images, texts = _features(n=4)
    tokens = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8]])
    targets = same_caption_targets(tokens)
    torch.testing.assert_close(targets, torch.eye(4))
    torch.testing.assert_close(soft_clip_loss(images, texts, 10.0, targets), clip_loss(images, texts, 10.0))
    tokens[1] = tokens[0]  # captions 0 and 1 are the same text: both are positives of images 0 and 1
    targets = same_caption_targets(tokens)
    assert targets[0, 1] == targets[1, 0] == 0.5 and targets[2, 2] == 1.0
    logits = 10.0 * images @ texts.T
    manual = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    torch.testing.assert_close(soft_clip_loss(images, texts, 10.0, targets), manual)


def test_shared_positives_loss_equals_the_direct_formula():
    # captions 0, 2 and 3 are one text, 1 and 4 are two others; written out from the definition:
    # each image's loss is the mean, over the texts identical to its own, of -log softmax over all texts
    # (and the same for each text against the images), the two directions averaged
    images, texts = _features(n=5)
    tokens = torch.tensor([[7, 1], [3, 3], [7, 1], [7, 1], [2, 9]])
    positives = [[0, 2, 3], [1], [0, 2, 3], [0, 2, 3], [4]]
    scale = 7.0
    sim = scale * images.double() @ texts.double().T
    image_side = [-sum(math.log(math.exp(sim[i, j]) / sum(math.exp(sim[i, k]) for k in range(5))) for j in pos)
                  / len(pos) for i, pos in enumerate(positives)]
    text_side = [-sum(math.log(math.exp(sim[j, t]) / sum(math.exp(sim[k, t]) for k in range(5))) for j in pos)
                 / len(pos) for t, pos in enumerate(positives)]
    direct = (sum(image_side) / 5 + sum(text_side) / 5) / 2
    got = soft_clip_loss(images, texts, scale, same_caption_targets(tokens))
    assert float(got) == pytest.approx(direct, rel=1e-5)
    assert float(got) != pytest.approx(float(clip_loss(images, texts, scale)), rel=1e-3)  # not plain InfoNCE
