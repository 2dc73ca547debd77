"""Ridge agrees with scikit-learn (fixed alphas; RidgeCV leave-one-out) and himalaya (RidgeCV, K-fold)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipsuite.brain.ridge import RidgeModel, alpha_choice, fit_ridge, fit_ridge_cv, log_alphas
from clipsuite.core.errors import InputError


def _problem(n: int = 120, p: int = 30, t: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) + rng.normal(size=p)
    w = rng.normal(size=(p, t)) * rng.uniform(0, 1, size=t)  # targets from nearly pure noise to strong signal
    y = x @ w + rng.normal(size=(n, t)) * rng.uniform(0.5, 20, size=t) + 3.0
    return x, y


ALPHAS = log_alphas(1e-2, 1e4, 10)


def test_fixed_alphas_match_sklearn_ridge():
    from sklearn.linear_model import Ridge

    x, y = _problem()
    per_target = np.asarray(ALPHAS * 4)[: y.shape[1]]
    ours = fit_ridge(x, y, per_target)
    ref = Ridge(alpha=per_target).fit(x, y)
    np.testing.assert_allclose(ours.coef.numpy(), ref.coef_.T, atol=1e-8, rtol=1e-6)
    np.testing.assert_allclose(ours.predict(x).numpy(), ref.predict(x), atol=1e-6)


@pytest.mark.parametrize("shape", [(120, 30), (40, 60)])  # more samples than features, and fewer
def test_loo_matches_sklearn_ridgecv(shape):
    from sklearn.linear_model import RidgeCV

    x, y = _problem(*shape)
    ours = fit_ridge_cv(x, y, ALPHAS, cv="loo", budget=8 * 1024 * 8)  # several target chunks
    ref = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(x, y)
    np.testing.assert_array_equal(ours.alphas.numpy(), ref.alpha_)
    assert len(set(ref.alpha_.tolist())) >= 3  # the problem really exercises per-target choice
    np.testing.assert_allclose(ours.predict(x).numpy(), ref.predict(x), atol=1e-4)
    np.testing.assert_allclose(ours.cv_scores.numpy(), ref.best_score_, rtol=1e-8)


def test_rank_deficient_design_matches_sklearn():
    """A duplicated and a constant column: the Gram-matrix SVD drops the null directions exactly."""
    from sklearn.linear_model import Ridge, RidgeCV

    x, y = _problem(p=20)
    x = np.concatenate([x, x[:, :3], np.full((len(x), 1), 2.0)], axis=1)
    ours = fit_ridge_cv(x, y, ALPHAS, cv="loo")
    ref = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(x, y)
    np.testing.assert_array_equal(ours.alphas.numpy(), ref.alpha_)
    np.testing.assert_allclose(ours.predict(x).numpy(), ref.predict(x), atol=1e-6)
    fixed = fit_ridge(x, y, 0.5)
    np.testing.assert_allclose(fixed.coef.numpy(), Ridge(alpha=0.5).fit(x, y).coef_.T, atol=1e-7, rtol=1e-6)


def test_float32_on_chunks_stays_close():
    x, y = _problem()
    exact = fit_ridge_cv(x, y, ALPHAS, cv="loo")
    fast = fit_ridge_cv(x, y, ALPHAS, cv="loo", dtype=torch.float32, budget=4096)
    np.testing.assert_allclose(fast.predict(x).double().numpy(), exact.predict(x).numpy(), atol=2e-3 * np.abs(y).max())


def test_kfold_matches_himalaya_ridgecv():
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV
    from sklearn.model_selection import KFold

    x, y = _problem(150, 25, 30, seed=1)
    folds = list(KFold(5).split(x))
    set_backend("torch", on_error="raise")
    try:
        ref = RidgeCV(alphas=np.asarray(ALPHAS), cv=KFold(5), fit_intercept=True).fit(
            torch.as_tensor(x), torch.as_tensor(y))
    finally:
        set_backend("numpy")
    ours = fit_ridge_cv(x, y, ALPHAS, cv=folds)
    # himalaya hands alphas back as exp(-log(alpha)): compare the grid positions chosen
    np.testing.assert_array_equal(_grid_index(ours.alphas.numpy()), _grid_index(ref.best_alphas_.numpy()))
    np.testing.assert_array_equal(ours.alphas.numpy(), np.asarray(ALPHAS)[_grid_index(ours.alphas.numpy())])
    assert len(set(ours.alphas.tolist())) >= 3
    ref_pred = x @ ref.coef_.numpy() + ref.intercept_.numpy()
    np.testing.assert_allclose(ours.predict(x).numpy(), ref_pred, atol=1e-4)
    ours_int = fit_ridge_cv(x, y, ALPHAS, cv=5)  # an int means the same contiguous folds
    np.testing.assert_array_equal(ours_int.alphas.numpy(), ours.alphas.numpy())


def _grid_index(values: np.ndarray) -> np.ndarray:
    return np.abs(np.log(values)[:, None] - np.log(ALPHAS)[None, :]).argmin(1)


def test_save_load_roundtrip(tmp_path):
    x, y = _problem(60, 10, 5)
    model = fit_ridge_cv(x, y, ALPHAS)
    model.save(tmp_path / "r.safetensors", {"features": "clip"})
    again, config = RidgeModel.load(tmp_path / "r.safetensors")
    assert config["features"] == "clip"
    np.testing.assert_array_equal(again.predict(x).numpy(), model.predict(x).numpy())


def test_loo_weighted_sums_keep_float64_accuracy():
    """The LOO score's weighted column sums over 8000 float32 rows stay within 5e-7 of float64 (one
    float32 matrix-vector product over all rows was ~3e-6 off: enough to tip a near tie of alphas)."""
    from clipsuite.brain.ridge import _weighted_column_sums

    g = torch.Generator().manual_seed(0)
    values = (torch.randn(8001, 300, generator=g) * torch.rand(300, generator=g) * 3 + 0.1).square()
    weight = 1 / (1 - torch.rand(8001, generator=g) * 0.1) ** 2
    exact = weight.double() @ values.double()
    got = _weighted_column_sums(values, weight)
    assert got.dtype == torch.float64
    assert float(((got - exact).abs() / exact).max()) < 5e-7


def _loo_r2(x: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """Leave-one-out R^2 of ridge with an unpenalised intercept, by refitting without each sample."""
    errors = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        xm, ym = x[keep].mean(0), y[keep].mean(0)
        xc = x[keep] - xm
        w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y[keep] - ym))
        errors.append((y[i] - ym - (x[i] - xm) @ w) ** 2)
    return float(np.mean(1 - np.mean(errors, axis=0) / y.var(0)))


def test_alpha_choice_names_the_range_the_crowded_edge_and_the_cv_r2():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 8))
    y = x @ rng.standard_normal((8, 5)) + 0.01 * rng.standard_normal((60, 5))
    grid = [1e2, 1e3, 1e4]
    model = fit_ridge_cv(x, y, grid)
    choice = alpha_choice(model, grid, y)
    # near-noiseless targets want almost no shrinkage: all at the grid's smallest alpha, so widen it downward
    assert (choice.grid_low, choice.grid_high) == (1e2, 1e4)
    assert choice.lowest == pytest.approx(1e2) and choice.highest == pytest.approx(1e2)
    assert (choice.at_low_edge, choice.at_high_edge) == (1.0, 0.0) and choice.crowded_edges() == ["low"]
    assert choice.cv_r2 == pytest.approx(_loo_r2(x, y, 1e2), rel=1e-6)
    assert choice.cv_mse == pytest.approx(float(-model.cv_scores.double().mean()))
    # targets unrelated to x: the strongest shrinkage wins, the high edge is the crowded one
    noise = rng.standard_normal((60, 5))
    grid = [1e-3, 1e-1, 10.0]
    noisy = alpha_choice(fit_ridge_cv(x, noise, grid), grid, noise)
    assert noisy.at_high_edge >= 0.6 and "high" in noisy.crowded_edges() and noisy.cv_r2 is not None
    assert noisy.cv_r2 < 0.05
    # a grid of one alpha has no edge to widen; a model fitted without CV chose nothing
    assert alpha_choice(fit_ridge_cv(x, y, [1.0]), [1.0], y).crowded_edges() == []
    with pytest.raises(InputError, match="not fitted by cross-validation"):
        alpha_choice(fit_ridge(x, y, 1.0), [1.0])

