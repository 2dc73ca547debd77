"""Linear probes on frozen features: plain (logistic regression) and CLAP (zero-shot initialised).

Plain: multinomial logistic regression with an L2 penalty, fitted by L-BFGS (as the CLIP paper's
sklearn probe), the penalty chosen on validation accuracy.
CLAP ("A Closer Look at the Few-Shot Adaptation of Large Vision-Language Models"): a linear head
initialised from the zero-shot prototypes, trained with CE + sum_c lambda_c ||w_c - t_c||^2; lambda_c is
initialised as CLAP does from the zero-shot confidence of class c on its own support samples.
"""

from __future__ import annotations

import torch
from torch import nn

from clipsuite.core.adapt.heads import LinearHead

PENALTIES = [10.0 ** e for e in range(-6, 1)]


def _fit_logistic(features: torch.Tensor, labels: torch.Tensor, n_classes: int, penalty: float,
                  iterations: int = 100) -> LinearHead:
    head = LinearHead(torch.zeros(n_classes, features.shape[1]), torch.zeros(n_classes), scale=1.0)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head(features), labels) + penalty * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return head


def fit_plain(features: torch.Tensor, labels: torch.Tensor, val_features: torch.Tensor, val_labels: torch.Tensor,
              n_classes: int) -> tuple[LinearHead, float]:
    """The best-on-validation logistic regression; returns (head, chosen penalty)."""
    features, val_features = features.float(), val_features.float()
    best: tuple[LinearHead | None, float, float] = (None, PENALTIES[0], -1.0)
    for penalty in PENALTIES:
        head = _fit_logistic(features, labels, n_classes, penalty)
        with torch.no_grad():
            accuracy = float((head(val_features).argmax(-1) == val_labels).float().mean())
        if accuracy > best[2]:
            best = (head, penalty, accuracy)
    assert best[0] is not None
    return best[0], best[1]


class CLAPHead(LinearHead):
    """A LinearHead that remembers its zero-shot anchor and per-class penalty weights."""

    anchor: torch.Tensor  # registered buffers
    lambdas: torch.Tensor

    def __init__(self, zero_shot: torch.Tensor, scale: float, lambdas: torch.Tensor) -> None:
        super().__init__(zero_shot, None, scale)
        self.register_buffer("anchor", zero_shot.detach().clone().float())
        self.register_buffer("lambdas", lambdas.detach().clone().float())

    def penalty(self) -> torch.Tensor:
        return (self.lambdas * (self.weight - self.anchor).pow(2).sum(dim=-1)).sum()


@torch.no_grad()
def clap_lambdas(zero_shot: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
    """lambda_c = mean zero-shot probability of class c over class c's support samples."""
    probs = (scale * features.float() @ zero_shot.T.float()).softmax(dim=-1)
    n_classes = zero_shot.shape[0]
    own = probs[torch.arange(len(labels)), labels]
    totals = torch.zeros(n_classes).index_add(0, labels.cpu(), own.cpu())
    return totals / torch.bincount(labels.cpu(), minlength=n_classes).clamp(min=1)
