"""MindEye's BiMixCo and SoftCLIP losses against direct per-element formulas; the schedule."""

from __future__ import annotations

import math

import pytest
import torch

from clipsuite.brain.losses import LossSchedule, Mix, cosine_anneal, mix_targets, mixco, mixco_nce, soft_clip_loss
from clipsuite.core.errors import InputError


def _unit(x):
    return [[a / math.sqrt(sum(b * b for b in v)) for a in v] for v in x.tolist()]


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _log_softmax(row):
    top = max(row)
    z = math.log(sum(math.exp(v - top) for v in row)) + top
    return [v - z for v in row]


def _softmax(row):
    return [math.exp(v) for v in _log_softmax(row)]


def _sample(n=6, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)


def test_mixco_nce_equals_the_soft_target_cross_entropy_written_out():
    preds, targets = _sample()
    perm = torch.tensor([2, 0, 1, 3, 5, 4])            # row 3 is its own partner
    betas = torch.tensor([0.7, 1.0, 0.2, 0.4, 1.0, 0.9])
    temp = 0.3
    p, t = _unit(preds), _unit(targets)
    n = len(p)
    target = [[0.0] * n for _ in range(n)]
    for i in range(n):
        target[i][i] += betas[i].item()
        target[i][perm[i].item()] += 1 - betas[i].item()
    logits = [[_dot(p[i], t[j]) / temp for j in range(n)] for i in range(n)]
    forward = -sum(sum(target[i][j] * _log_softmax(logits[i])[j] for j in range(n)) for i in range(n)) / n
    columns = [[logits[i][j] for i in range(n)] for j in range(n)]
    backward = -sum(sum(target[i][j] * _log_softmax(columns[j])[i] for i in range(n)) for j in range(n)) / n
    got = mixco_nce(preds, targets, temp, Mix(perm, betas))
    assert got.item() == pytest.approx((forward + backward) / 2, rel=1e-5)
    assert mixco_nce(preds, targets, temp, Mix(perm, betas), bidirectional=False).item() == pytest.approx(
        forward, rel=1e-5)
    # every row of the target is a distribution, also where a sample is mixed with itself
    torch.testing.assert_close(mix_targets(Mix(perm, betas)).sum(1), torch.ones(n))
    # without a mix it is CLIP's symmetric InfoNCE
    plain = (torch.nn.functional.cross_entropy(torch.tensor(logits), torch.arange(n)) +
             torch.nn.functional.cross_entropy(torch.tensor(logits).T, torch.arange(n))) / 2
    assert mixco_nce(preds, targets, temp).item() == pytest.approx(plain.item(), rel=1e-5)


def test_soft_clip_loss_equals_the_formula_written_out():
    preds, targets = _sample(seed=1)
    temp = 0.25
    p, t = _unit(preds), _unit(targets)
    n = len(p)
    soft = [_softmax([_dot(t[i], t[j]) / temp for j in range(n)]) for i in range(n)]
    logits = [[_dot(p[i], t[j]) / temp for j in range(n)] for i in range(n)]
    columns = [[logits[i][j] for i in range(n)] for j in range(n)]
    forward = -sum(sum(soft[i][j] * _log_softmax(logits[i])[j] for j in range(n)) for i in range(n)) / n
    backward = -sum(sum(soft[j][i] * _log_softmax(columns[j])[i] for i in range(n)) for j in range(n)) / n
    assert soft_clip_loss(preds, targets, temp).item() == pytest.approx((forward + backward) / 2, rel=1e-5)
    # decoding the CLIP embeddings themselves is better than decoding noise
    assert soft_clip_loss(targets, targets, temp) < soft_clip_loss(preds, targets, temp)


def test_mixco_mixes_the_selected_rows_with_their_partner():
    torch.manual_seed(0)
    x = torch.randn(64, 7)
    mixed, mix = mixco(x.clone())
    b = mix.betas[:, None]
    torch.testing.assert_close(mixed, b * x + (1 - b) * x[mix.perm])
    unmixed = mix.betas == 1
    assert 10 < int((~unmixed).sum()) < 54      # about half the rows (s_thresh 0.5)
    assert ((mix.betas > 0) & (mix.betas <= 1)).all()
    # Beta(0.15, 0.15) puts most mass near 0 and 1
    drawn = mix.betas[~unmixed]
    assert ((drawn < 0.2) | (drawn > 0.8)).float().mean() > 0.5


def test_schedule_bimixco_first_third_then_annealed_softclip():
    schedule = LossSchedule(epochs=9)
    assert schedule.mix_epochs == 2
    assert [schedule.at(e)[0] for e in range(9)] == ["bimixco"] * 2 + ["softclip"] * 7
    assert schedule.at(0)[1] == 0.006
    temps = [schedule.at(e)[1] for e in range(2, 9)]
    assert temps[0] == pytest.approx(0.004) and temps[-1] == pytest.approx(0.0075)
    assert temps == sorted(temps)
    # MindEye's cosine_anneal: end + (start - end) / 2 * (1 + cos(pi i / (steps - 1)))
    assert cosine_anneal(0.004, 0.0075, 5)[2] == pytest.approx(0.0075 + (0.004 - 0.0075) / 2)
    assert schedule.at(100) == schedule.at(8)
    with pytest.raises(InputError, match="mixup fraction"):
        LossSchedule(epochs=3, mixup_fraction=1.5)
