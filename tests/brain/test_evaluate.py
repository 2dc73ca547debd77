"""Decoding and encoding metrics against direct, loop-by-loop formulas."""

from __future__ import annotations

import numpy as np
import pytest

from clipsuite.brain import evaluate as ev


def _cos(a, b):
    return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


def test_category_decoding_matches_loop():
    rng = np.random.default_rng(0)
    cands = rng.normal(size=(50, 16))
    labels = rng.integers(0, 50, size=80)
    decoded = cands[labels] + rng.normal(scale=2.5, size=(80, 16))
    got = ev.category_decoding(decoded, cands, labels)
    ranks = [sorted(range(50), key=lambda c: -_cos(d, cands[c])).index(lab) for d, lab in zip(decoded, labels)]
    assert got["top1"] == pytest.approx(np.mean(np.array(ranks) < 1))
    assert got["top5"] == pytest.approx(np.mean(np.array(ranks) < 5))
    assert 0.02 < got["top1"] < 1.0 and got["n_way"] == 50


def test_retrieval_matches_loop_and_is_averaged_over_draws():
    # MindEye's protocol at a size a per-element loop can check quickly: 100-way draws from 130 samples
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(130, 12))
    decoded = truth + rng.normal(scale=1.2, size=truth.shape)
    got = ev.retrieval(decoded, truth, n_way=100, draws=8, seed=5)
    picks = np.random.default_rng(5)
    fwd, bwd = [], []
    for _ in range(8):
        idx = picks.permutation(130)[:100]
        sim = np.array([[_cos(decoded[i], truth[j]) for j in idx] for i in idx])
        fwd.append(np.mean(sim.argmax(1) == np.arange(100)))
        bwd.append(np.mean(sim.argmax(0) == np.arange(100)))
    assert got["image_retrieval"] == pytest.approx(np.mean(fwd))
    assert got["brain_retrieval"] == pytest.approx(np.mean(bwd))
    assert got["n_way"] == 100 and got["draws"] == 8
    assert 0.05 < got["image_retrieval"] < 0.95 and len(set(fwd)) > 1  # not trivial, and the draws differ
    small = ev.retrieval(decoded[:20], truth[:20])
    assert small["n_way"] == 20 and small["draws"] == 1


def test_pairwise_identification_matches_loop():
    rng = np.random.default_rng(2)
    truth = rng.normal(size=(30, 10))
    decoded = truth + rng.normal(scale=1.5, size=truth.shape)
    expected = np.mean([np.mean([np.corrcoef(decoded[i], truth[i])[0, 1] > np.corrcoef(decoded[i], truth[j])[0, 1]
                                 for j in range(30) if j != i]) for i in range(30)])
    assert ev.pairwise_identification(decoded, truth) == pytest.approx(expected)
    assert ev.pairwise_identification(truth, truth) == 1.0


def test_pearson_and_noise_ceiling():
    rng = np.random.default_rng(3)
    true = rng.normal(size=(50, 6))
    pred = true * [1, 0.5, 0, 2, -1, 0.1] + rng.normal(size=(50, 6))
    r = ev.pearson_columns(pred, true)
    np.testing.assert_allclose(r, [np.corrcoef(pred[:, k], true[:, k])[0, 1] for k in range(6)])
    # ncsnr from repeats: signal variance 0.6, noise variance 0.4 (z-scored scale) -> ncsnr = sqrt(0.6/0.4)
    n_stim, reps = 400, 3
    signal = rng.normal(scale=np.sqrt(0.6), size=(n_stim, 1))
    trials = np.repeat(signal, reps, axis=0) + rng.normal(scale=np.sqrt(0.4), size=(n_stim * reps, 1))
    ids = np.repeat(np.arange(n_stim), reps)
    snr = ev.ncsnr(trials, ids)
    assert snr[0] == pytest.approx(np.sqrt(0.6 / 0.4), rel=0.1)
    nc = ev.noise_ceiling(snr, reps)
    assert nc[0] == pytest.approx(100 * snr[0] ** 2 / (snr[0] ** 2 + 1 / 3))
    assert ev.normalised_r(np.array([0.5]), np.array([25.0]))[0] == pytest.approx(1.0)
