"""Ridge regression with many alphas and one alpha per target, chosen by efficient cross-validation.

One SVD of the (centred) design (from the eigendecomposition of its Gram matrix) is reused for every
alpha and every target:

- ``cv="loo"``: exact leave-one-out errors from the hat matrix, as scikit-learn's
  ``RidgeCV(alpha_per_target=True)`` (GCV, SVD mode): residual_i / (1 - h_ii), with the intercept
  unpenalised (h gets 1/n). Per target the alpha with the smallest mean squared LOO error wins; on
  an exact tie the first alpha in the given order (scikit-learn's rule).
- ``cv=k`` or explicit folds: one SVD per training fold; validation predictions for all alphas
  from ``(X_val V) diag(s / (s^2 + alpha)) (U^T Y_train)``. The score is himalaya's: mean over folds
  of minus the mean squared error, plus ``1e-10 log(alpha)`` so ties go to the larger alpha.

Targets are processed in chunks sized to a memory budget, on the CPU or a GPU, in float32 or
float64. The refit on all samples uses the same SVD: W_t = V diag(s / (s^2 + alpha_t)) U^T y_t.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipsuite.core.checkpoints import load_tensors, read_config, save_tensors
from clipsuite.core.errors import InputError

Folds = Sequence[tuple[np.ndarray, np.ndarray]]
DEFAULT_BUDGET = 512 * 2**20  # bytes of working memory per target chunk


@dataclass
class RidgeModel:
    """Fitted weights: ``predict(X) = X @ coef + intercept``."""

    coef: torch.Tensor        # (n_features, n_targets)
    intercept: torch.Tensor   # (n_targets,)
    alphas: torch.Tensor      # (n_targets,) the alpha of each target
    cv_scores: torch.Tensor | None = None  # (n_targets,) the winning alpha's CV score (higher is better)

    def predict(self, x: np.ndarray | torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        x = torch.as_tensor(x)
        coef = self.coef
        if x.shape[1] != coef.shape[0]:
            raise InputError(f"ridge model expects {coef.shape[0]} features, got {x.shape[1]}")
        x = x.to(device=coef.device, dtype=coef.dtype)
        return torch.cat([x[i:i + chunk] @ coef + self.intercept for i in range(0, len(x), chunk)])

    def save(self, path: str | Path, config: dict[str, Any] | None = None) -> None:
        tensors = {"coef": self.coef, "intercept": self.intercept, "alphas": self.alphas}
        if self.cv_scores is not None:
            tensors["cv_scores"] = self.cv_scores
        save_tensors(path, tensors, {"kind": "ridge", **(config or {})})

    @classmethod
    def load(cls, path: str | Path) -> tuple[RidgeModel, dict[str, Any]]:
        tensors = load_tensors(path)
        config = read_config(path) or {}
        if config.get("kind") != "ridge" or "coef" not in tensors:
            raise InputError(f"{path}: not a clipsuite ridge model")
        return cls(tensors["coef"], tensors["intercept"], tensors["alphas"], tensors.get("cv_scores")), config


def _prepare(x: Any, y: Any, device: str | torch.device | None, dtype: torch.dtype
             ) -> tuple[torch.Tensor, torch.Tensor, torch.device]:
    dev = torch.device(device) if device is not None else torch.device("cpu")
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(dev, dtype)
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)  # stays where it is: chunked
    if y.ndim == 1:
        y = y[:, None]
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise InputError(f"ridge: X {tuple(x.shape)} and Y {tuple(y.shape)} do not have the same number of rows")
    if not torch.isfinite(x).all():
        raise InputError("ridge: X has NaN or infinite values")
    return x, y, dev


def _alphas(alphas: Sequence[float] | float | np.ndarray) -> np.ndarray:
    values = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if values.ndim != 1 or len(values) == 0 or not (values > 0).all():
        raise InputError("ridge: alphas must be positive numbers")
    return values


def _chunk_size(n_rows: int, n_alphas: int, itemsize: int, budget: int) -> int:
    # per target: a few n_rows-long columns (targets, fitted values, residuals) per alpha in flight
    return max(1, int(budget // (itemsize * n_rows * (3 + min(n_alphas, 2)))))


def _eigh(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``eigh`` on one thread when on the CPU: a p x p problem (p ~ 512) gains nothing from threads, and
    LAPACK's threaded divide-and-conquer stalls on busy cores (0.4-5 s measured on 2 loaded cores, 0.1 s
    on one thread)."""
    if gram.device.type != "cpu":
        return torch.linalg.eigh(gram)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(gram)
    finally:
        torch.set_num_threads(threads)


def _svd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The thin SVD ``x = U diag(s) V^T`` from the eigendecomposition of the smaller Gram matrix.

    LAPACK's SVD of a tall n x p matrix costs seconds where ``X^T X`` (n p^2) and its p x p ``eigh``
    cost a fraction, so: Gram and ``eigh`` in float64 (squaring the condition number there costs
    nothing that float64 cannot hold), then ``U = X V / s`` (or ``V = X^T U / s`` when n < p).
    Directions with ``s <= s_max * max(n, p) * eps`` (numpy's rank tolerance) are dropped: ridge
    gives them zero weight and zero leverage for every alpha > 0, so nothing changes but the rank.
    """
    xd = x.double()
    tall = x.shape[0] >= x.shape[1]
    gram = xd.mT @ xd if tall else xd @ xd.mT
    evals, vecs = _eigh(gram)
    s = evals.clamp_min(0).sqrt()
    keep = s > s.max() * max(x.shape) * torch.finfo(torch.float64).eps
    s, vecs = s[keep].flip(0), vecs[:, keep].flip(1)  # descending, as an SVD returns them
    other = (xd @ vecs if tall else xd.mT @ vecs) / s
    u, v = (other, vecs) if tall else (vecs, other)
    return u.to(x.dtype), s.to(x.dtype), v.to(x.dtype)


class _Progress:
    def __init__(self, total: int, callback: Callable[[int, int], None] | None) -> None:
        self.done, self.total, self.callback = 0, total, callback

    def advance(self, n: int) -> None:
        self.done += n
        if self.callback is not None:
            self.callback(self.done, self.total)


def fit_ridge(x: Any, y: Any, alpha: float | Sequence[float] | np.ndarray, fit_intercept: bool = True,
              device: str | torch.device | None = None, dtype: torch.dtype = torch.float64,
              budget: int = DEFAULT_BUDGET) -> RidgeModel:
    """Ridge at fixed alpha(s): one value, or one per target (as scikit-learn's ``Ridge(alpha=array)``)."""
    x, y, dev = _prepare(x, y, device, dtype)
    n_targets = y.shape[1]
    per_target = np.broadcast_to(_alphas(alpha), (n_targets,)) if np.ndim(alpha) == 0 or len(
        np.atleast_1d(alpha)) == 1 else _alphas(alpha)
    if len(per_target) != n_targets:
        raise InputError(f"ridge: {len(per_target)} alphas for {n_targets} targets")
    x_mean = x.mean(0) if fit_intercept else torch.zeros(x.shape[1], device=dev, dtype=dtype)
    u, s, v = _svd(x - x_mean)
    coef = torch.empty(x.shape[1], n_targets, dtype=dtype, device=dev)
    intercept = torch.empty(n_targets, dtype=dtype, device=dev)
    alphas_t = torch.as_tensor(np.ascontiguousarray(per_target), dtype=dtype, device=dev)
    step = _chunk_size(x.shape[0], 1, x.element_size(), budget)
    for start in range(0, n_targets, step):
        cols = slice(start, start + step)
        yc = y[:, cols].to(dev, dtype)
        y_mean = yc.mean(0) if fit_intercept else torch.zeros(yc.shape[1], device=dev, dtype=dtype)
        uty = u.mT @ (yc - y_mean)
        d = s[:, None] / (s[:, None] ** 2 + alphas_t[cols][None, :])
        coef[:, cols] = v @ (d * uty)
        intercept[cols] = y_mean - x_mean @ coef[:, cols]
    return RidgeModel(coef, intercept, alphas_t)


def _refit(v: torch.Tensor, s: torch.Tensor, uty: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Primal weights for each target at its own alpha: V diag(s / (s^2 + alpha_t)) U^T y_t."""
    return v @ (s[:, None] / (s[:, None] ** 2 + alphas[None, :]) * uty)


def fit_ridge_cv(x: Any, y: Any, alphas: Sequence[float], cv: str | int | Folds = "loo", fit_intercept: bool = True,
                 device: str | torch.device | None = None, dtype: torch.dtype = torch.float64,
                 budget: int = DEFAULT_BUDGET, on_progress: Callable[[int, int], None] | None = None) -> RidgeModel:
    """Choose one alpha per target by cross-validation and refit on all samples."""
    x, y, dev = _prepare(x, y, device, dtype)
    grid = _alphas(alphas)
    n, n_targets = x.shape[0], y.shape[1]
    folds = _folds(cv, n)
    x_mean = x.mean(0) if fit_intercept else torch.zeros(x.shape[1], device=dev, dtype=dtype)
    u, s, v = _svd(x - x_mean)
    fold_svds = [] if folds is None else [_fold_svd(x, tr, va, fit_intercept, dev) for tr, va in folds]
    coef = torch.empty(x.shape[1], n_targets, dtype=dtype, device=dev)
    intercept = torch.empty(n_targets, dtype=dtype, device=dev)
    best_alpha = torch.empty(n_targets, dtype=dtype, device=dev)
    best_score = torch.empty(n_targets, dtype=torch.float64, device=dev)
    grid_t = torch.as_tensor(grid, dtype=dtype, device=dev)
    step = _chunk_size(n, len(grid), x.element_size(), budget)
    progress = _Progress(n_targets, on_progress)
    for start in range(0, n_targets, step):
        cols = slice(start, start + step)
        yc = y[:, cols].to(dev, dtype)
        y_mean = yc.mean(0) if fit_intercept else torch.zeros(yc.shape[1], device=dev, dtype=dtype)
        yc = yc - y_mean
        uty = u.mT @ yc
        if folds is None:
            scores = _loo_scores(u, s, uty, yc, grid_t, fit_intercept)
            index = _first_argmax(scores)
        else:
            scores = _kfold_scores(fold_svds, y[:, cols], grid_t, fit_intercept, dev, dtype)
            index = (scores + 1e-10 * torch.log(grid_t.double())[:, None]).argmax(0)
        chosen = grid_t[index]
        coef[:, cols] = _refit(v, s, uty, chosen)
        intercept[cols] = y_mean - x_mean @ coef[:, cols]
        best_alpha[cols] = chosen
        best_score[cols] = scores.gather(0, index[None, :])[0]
        progress.advance(yc.shape[1])
    return RidgeModel(coef, intercept, best_alpha, best_score)


def _first_argmax(scores: torch.Tensor) -> torch.Tensor:
    """Row index of the maximum per column, the first one on ties (scikit-learn's strict '>' update)."""
    best = scores.max(0, keepdim=True).values
    return (scores == best).to(torch.int8).argmax(0)


def _loo_scores(u: torch.Tensor, s: torch.Tensor, uty: torch.Tensor, yc: torch.Tensor, alphas: torch.Tensor,
                fit_intercept: bool) -> torch.Tensor:
    """Minus the mean squared leave-one-out error, (n_alphas, n_targets)."""
    n = yc.shape[0]
    u2 = u * u
    out = torch.empty(len(alphas), yc.shape[1], dtype=torch.float64, device=yc.device)
    for k, alpha in enumerate(alphas):
        shrink = s * s / (s * s + alpha)
        weight = 1.0 / (1.0 - (u2 @ shrink + (1.0 / n if fit_intercept else 0.0)))
        # one n x t buffer per alpha, updated in place: y - U diag(shrink) U^T y, squared; the LOO
        # weights 1/(1-h)^2 enter through blocked matrix-vector products (a float64 column sum of the
        # float32 buffer cost 2/3 of the matrix product itself at 8000 x 512)
        residual = torch.addmm(yc, u, shrink[:, None] * uty, alpha=-1).square_()
        out[k] = _weighted_column_sums(residual, weight * weight).div_(-n)
    return out


def _weighted_column_sums(values: torch.Tensor, weight: torch.Tensor, block: int = 256) -> torch.Tensor:
    """``weight @ values`` in float64 from products over blocks of ``block`` rows (one batched
    matrix-vector product in the working dtype) added in float64. One float32 product over all 8000
    rows lost ~3e-6 relative, enough to pick another alpha than scikit-learn for 1 target in 2000;
    blocks keep it at ~1e-7 for the same cost."""
    n, t = values.shape
    full = n - n % block
    out = torch.zeros(t, dtype=torch.float64, device=values.device)
    if full:
        parts = torch.matmul(weight[:full].reshape(-1, 1, block), values[:full].reshape(-1, block, t))
        out += parts.double().sum(0)[0]
    if full < n:
        out += (weight[full:] @ values[full:]).double()
    return out


@dataclass
class _FoldSvd:
    u: torch.Tensor
    s: torch.Tensor
    xv: torch.Tensor          # validation rows projected on V: (X_val - mean_train) V
    train: torch.Tensor
    val: torch.Tensor


def _fold_svd(x: torch.Tensor, train: np.ndarray, val: np.ndarray, fit_intercept: bool,
              dev: torch.device) -> _FoldSvd:
    tr = torch.as_tensor(train, device=dev, dtype=torch.long)
    va = torch.as_tensor(val, device=dev, dtype=torch.long)
    xt = x[tr]
    mean = xt.mean(0) if fit_intercept else torch.zeros_like(xt[0])
    u, s, v = _svd(xt - mean)
    return _FoldSvd(u, s, (x[va] - mean) @ v, tr.cpu(), va.cpu())


def _kfold_scores(svds: list[_FoldSvd], y: torch.Tensor, alphas: torch.Tensor, fit_intercept: bool,
                  dev: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Mean over folds of minus the validation mean squared error, (n_alphas, n_targets)."""
    total = torch.zeros(len(alphas), y.shape[1], dtype=torch.float64, device=dev)
    for fold in svds:
        yt = y[fold.train].to(dev, dtype)
        yv = y[fold.val].to(dev, dtype)
        if fit_intercept:
            mean = yt.mean(0)
            yt, yv = yt - mean, yv - mean
        uty = fold.u.mT @ yt
        for k, alpha in enumerate(alphas):
            # in place, as in _loo_scores: y_val - X_val w, squared, summed in the working dtype
            err = torch.addmm(yv, fold.xv, (fold.s / (fold.s * fold.s + alpha))[:, None] * uty, alpha=-1)
            total[k] -= err.square_().sum(0).double() / yv.shape[0]
    return total / len(svds)


def _folds(cv: str | int | Folds, n: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    if isinstance(cv, str):
        if cv.lower() != "loo":
            raise InputError(f"ridge: unknown cv '{cv}' (loo, a number of folds, or explicit folds)")
        return None
    if isinstance(cv, int):
        if not 2 <= cv <= n:
            raise InputError(f"ridge: {cv} folds for {n} samples")
        # contiguous folds, as scikit-learn's KFold without shuffling (himalaya's default)
        bounds = [0, *np.cumsum([n // cv + (1 if i < n % cv else 0) for i in range(cv)])]
        idx = np.arange(n)
        return [(np.concatenate([idx[:a], idx[b:]]), idx[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    folds = [(np.asarray(tr), np.asarray(va)) for tr, va in cv]
    if not folds or any(len(tr) == 0 or len(va) == 0 for tr, va in folds):
        raise InputError("ridge: every fold needs training and validation samples")
    return folds


def log_alphas(low: float = 1e-2, high: float = 1e5, count: int = 10) -> list[float]:
    """A log-spaced alpha grid (the usual choice for voxel-wise models)."""
    return [float(v) for v in np.logspace(math.log10(low), math.log10(high), count)]


@dataclass(frozen=True)
class AlphaChoice:
    """The alphas cross-validation chose, one per target, against the grid they were chosen from.

    Many targets at an edge of the grid mean their best alpha may lie beyond it: the grid should be
    widened on that side (``crowded_edges``)."""

    grid_low: float
    grid_high: float
    lowest: float         # the smallest alpha chosen
    median: float
    highest: float        # the largest alpha chosen
    at_low_edge: float    # share of targets that chose the grid's smallest alpha
    at_high_edge: float   # share of targets that chose the grid's largest alpha
    cv_mse: float         # mean over targets of the cross-validated mean squared error
    cv_r2: float | None   # mean over targets of 1 - CV error / the target's variance (None: targets unknown)

    def crowded_edges(self, share: float = 0.05) -> list[str]:
        """``low`` and/or ``high``: the grid's edges chosen by more than ``share`` of the targets (a grid of
        one alpha has no edge to widen)."""
        if self.grid_low == self.grid_high:
            return []
        return [edge for edge, at in (("low", self.at_low_edge), ("high", self.at_high_edge)) if at > share]

    def to_json(self) -> dict[str, float | None]:
        return dict(self.__dict__)


def alpha_choice(model: RidgeModel, grid: Sequence[float], targets: Any = None) -> AlphaChoice:
    """Summarise ``model``'s per-target alphas (from ``fit_ridge_cv`` over ``grid``); ``targets``: the
    training targets it was fitted on, for the cross-validated R^2 (their variance is its scale)."""
    if model.cv_scores is None:
        raise InputError("ridge: this model was not fitted by cross-validation (fit_ridge_cv); no alphas were chosen")
    chosen = model.alphas.detach().double().cpu().numpy()
    values = _alphas(grid)
    low, high = float(values.min()), float(values.max())
    # chosen alphas are grid values cast to the fit's dtype: compare at that precision
    near = np.finfo(model.alphas.detach().cpu().numpy().dtype).eps * 8
    mse = -model.cv_scores.detach().double().cpu().numpy()
    r2 = None
    if targets is not None:
        variance = np.asarray(targets, dtype=np.float64).var(0)
        usable = variance > 0  # a constant target has no variance to explain
        r2 = float(np.mean(1.0 - mse[usable] / variance[usable])) if usable.any() else None
    return AlphaChoice(grid_low=low, grid_high=high, lowest=float(chosen.min()), median=float(np.median(chosen)),
                       highest=float(chosen.max()),
                       at_low_edge=float(np.mean(np.abs(chosen - low) <= near * low)),
                       at_high_edge=float(np.mean(np.abs(chosen - high) <= near * high)),
                       cv_mse=float(mse.mean()), cv_r2=r2)
