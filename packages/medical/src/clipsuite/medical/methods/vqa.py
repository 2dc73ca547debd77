"""Medical VQA on a CLIP image encoder: MEVF-style and QCR-style heads (PubMedCLIP's comparison).

Both heads read the same inputs:
- visual tokens: the CLIP image feature plus the projected patch tokens of a ViT (frozen CLIP
  features can be precomputed once), each concatenated with the code of a small convolutional
  denoising autoencoder trained jointly (MEVF's CDAE; reconstruction loss weight ``ae_weight``);
- question tokens: word embeddings -> GRU (MEVF/QCR read 12 tokens).
Fusion is a low-rank bilinear attention network (BAN): per glimpse, an attention map over
(visual token x word) pairs, a bilinear joint vector and a residual update of the question tokens.

MEVF: one classifier over all answers. QCR: a question-type classifier routes each question to a
closed-answer or an open-answer branch (each its own BAN and classifier over its answer subset).
Both train with binary cross-entropy on answer targets, as the papers do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from clipsuite.core.errors import ModelError
from clipsuite.core.models import ClipModel
from clipsuite.core.towers import VisionTower, vision_tower

Head = Literal["mevf", "qcr"]


@dataclass
class VQAConfig:
    head: Head = "qcr"
    visual_dim: int = 512       # CLIP embedding size
    n_answers: int = 2
    closed_answers: tuple[int, ...] = ()
    open_answers: tuple[int, ...] = ()
    vocab_size: int = 2
    max_tokens: int = 12
    word_dim: int = 300
    hidden: int = 1024          # GRU and BAN size (MEVF: 1024)
    glimpses: int = 2
    use_ae: bool = True
    ae_size: int = 128          # MEVF's CDAE reads 128 px grayscale
    ae_channels: int = 64
    ae_weight: float = 0.001
    dropout: float = 0.2

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["closed_answers"], data["open_answers"] = list(self.closed_answers), list(self.open_answers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VQAConfig:
        data = dict(data)
        data["closed_answers"] = tuple(data.get("closed_answers", ()))
        data["open_answers"] = tuple(data.get("open_answers", ()))
        return cls(**data)


class DenoisingAutoencoder(nn.Module):
    """MEVF's convolutional denoising autoencoder on a grayscale image: the code joins the visual tokens."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(channels, 1, 4, stride=2, padding=1))

    def forward(self, grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noisy = grey + 0.05 * torch.randn_like(grey) if self.training else grey
        code = self.encoder(noisy)
        return code, F.mse_loss(self.decoder(code), grey)


class QuestionEncoder(nn.Module):
    def __init__(self, vocab_size: int, word_dim: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, hidden, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embed(tokens))
        return out  # [B, T, hidden]


class BilinearAttention(nn.Module):
    """Low-rank bilinear attention over visual tokens x question tokens, with BAN's residual update."""

    def __init__(self, v_dim: int, q_dim: int, hidden: int, glimpses: int, dropout: float) -> None:
        super().__init__()
        self.v_proj = nn.Sequential(nn.Linear(v_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.q_proj = nn.Sequential(nn.Linear(q_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.h = nn.Parameter(torch.randn(glimpses, hidden) * hidden ** -0.5)
        self.h_bias = nn.Parameter(torch.zeros(glimpses))
        self.out = nn.ModuleList(nn.Linear(hidden, q_dim) for _ in range(glimpses))

    def forward(self, v: torch.Tensor, q: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
        """v [B, N, Dv], q [B, T, Dq], q_mask [B, T] (True for words) -> updated q [B, T, Dq]."""
        vp, qp = self.v_proj(v), self.q_proj(q)
        logits = torch.einsum("bnk,gk,btk->bgnt", vp, self.h, qp) + self.h_bias.view(1, -1, 1, 1)
        logits = logits.masked_fill(~q_mask[:, None, None, :], float("-inf"))
        b, g, n, t = logits.shape
        att = logits.reshape(b, g, n * t).softmax(dim=-1).reshape(b, g, n, t)
        for glimpse in range(g):
            joint = torch.einsum("bnk,bnt,btk->bk", vp, att[:, glimpse], qp)
            q = q + self.out[glimpse](joint).unsqueeze(1)
        return q


class AnswerBranch(nn.Module):
    """BAN fusion + a two-layer classifier over a set of answers."""

    def __init__(self, v_dim: int, cfg: VQAConfig, n_out: int) -> None:
        super().__init__()
        self.attention = BilinearAttention(v_dim, cfg.hidden, cfg.hidden, cfg.glimpses, cfg.dropout)
        self.classifier = nn.Sequential(nn.Linear(cfg.hidden, 2 * cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                                        nn.Linear(2 * cfg.hidden, n_out))

    def forward(self, v: torch.Tensor, q: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
        fused = self.attention(v, q, q_mask)
        pooled = (fused * q_mask.unsqueeze(-1)).sum(1)  # BAN sums over the question tokens
        return self.classifier(pooled)


class MedVQA(nn.Module):
    """Visual tokens + question -> answer logits over the whole vocabulary (and a question-type logit).

    ``forward`` takes ``visual`` ``[B, N, visual_dim]`` (CLIP tokens), ``tokens`` ``[B, T]`` and
    optionally ``grey`` ``[B, 1, ae_size, ae_size]`` for the autoencoder."""

    closed_index: torch.Tensor  # QCR's buffers: the vocabulary rows of each branch
    open_index: torch.Tensor

    def __init__(self, cfg: VQAConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.ae = DenoisingAutoencoder(cfg.ae_channels) if cfg.use_ae else None
        v_dim = cfg.visual_dim + (2 * cfg.ae_channels if cfg.use_ae else 0)
        self.question = QuestionEncoder(cfg.vocab_size, cfg.word_dim, cfg.hidden)
        if cfg.head == "mevf":
            self.branch = AnswerBranch(v_dim, cfg, cfg.n_answers)
        elif cfg.head == "qcr":
            if not cfg.closed_answers or not cfg.open_answers:
                raise ValueError("QCR needs both closed and open answers in the vocabulary")
            self.type_classifier = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden // 2), nn.ReLU(),
                                                 nn.Linear(cfg.hidden // 2, 2))  # 0 = open, 1 = closed
            self.closed_branch = AnswerBranch(v_dim, cfg, len(cfg.closed_answers))
            self.open_branch = AnswerBranch(v_dim, cfg, len(cfg.open_answers))
            self.register_buffer("closed_index", torch.tensor(cfg.closed_answers, dtype=torch.long), persistent=False)
            self.register_buffer("open_index", torch.tensor(cfg.open_answers, dtype=torch.long), persistent=False)
        else:
            raise ValueError(f"head must be 'mevf' or 'qcr', got {cfg.head!r}")

    def visual_tokens(self, visual: torch.Tensor, grey: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        recon = visual.new_zeros(())
        if self.ae is not None:
            if grey is None:
                raise ValueError("this model uses the autoencoder: pass 'grey' images")
            code, recon = self.ae(grey)
            # mean- and max-pooled code, concatenated to every CLIP token: max pooling keeps a small
            # focal finding (a lesion) that averaging over the image would wash out
            pooled = torch.cat([code.mean(dim=(2, 3)), code.amax(dim=(2, 3))], dim=-1)
            visual = torch.cat([visual, pooled.unsqueeze(1).expand(-1, visual.shape[1], -1)], dim=-1)
        return visual, recon

    def forward(self, visual: torch.Tensor, tokens: torch.Tensor, grey: torch.Tensor | None = None,
                ) -> dict[str, torch.Tensor]:
        v, recon = self.visual_tokens(visual, grey)
        q = self.question(tokens)
        mask = tokens != 0
        mask[:, 0] = True  # an all-padding question still attends somewhere
        if self.cfg.head == "mevf":
            return {"logits": self.branch(v, q, mask), "recon": recon}
        q_mean = (q * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return {"closed_logits": self.closed_branch(v, q, mask), "open_logits": self.open_branch(v, q, mask),
                "type_logits": self.type_classifier(q_mean), "recon": recon}

    def answer_scores(self, out: dict[str, torch.Tensor], route: torch.Tensor | None = None) -> torch.Tensor:
        """Scores over the full answer vocabulary. QCR routes by the predicted question type (or by
        ``route``: 1 = closed, 0 = open); answers outside the chosen branch get -inf."""
        if self.cfg.head == "mevf":
            return out["logits"]
        closed = route if route is not None else out["type_logits"].argmax(-1)
        batch = closed.shape[0]
        scores = out["closed_logits"].new_full((batch, self.cfg.n_answers), float("-inf"))
        closed_rows = closed.bool()
        for rows, index, key in ((closed_rows, self.closed_index, "closed_logits"),
                                 (~closed_rows, self.open_index, "open_logits")):
            scores[rows.nonzero(as_tuple=True)[0].unsqueeze(1), index] = out[key][rows]
        return scores

    def loss(self, out: dict[str, torch.Tensor], answers: torch.Tensor, is_closed: torch.Tensor,
             ) -> dict[str, torch.Tensor]:
        """BCE on one-hot answer targets (answers unseen in training, -1, have all-zero targets)."""
        if self.cfg.head == "mevf":
            vqa = F.binary_cross_entropy_with_logits(out["logits"], _one_hot(answers, self.cfg.n_answers),
                                                     reduction="sum") / answers.shape[0]
            parts = {"vqa": vqa}
        else:
            vqa = answers.new_zeros((), dtype=torch.float32)
            for rows, key, index in ((is_closed, "closed_logits", self.closed_index),
                                     (~is_closed, "open_logits", self.open_index)):
                if rows.any():
                    local = _local_targets(answers[rows], index)
                    vqa = vqa + F.binary_cross_entropy_with_logits(out[key][rows], local, reduction="sum")
            vqa = vqa / answers.shape[0]
            type_loss = F.cross_entropy(out["type_logits"], is_closed.long())
            parts = {"vqa": vqa, "type": type_loss}
        total = sum(parts.values()) + self.cfg.ae_weight * out["recon"]
        return {"loss": total, **parts, "recon": out["recon"].detach()}


def _one_hot(answers: torch.Tensor, n: int) -> torch.Tensor:
    target = torch.zeros(answers.shape[0], n, device=answers.device)
    known = answers >= 0
    target[known.nonzero(as_tuple=True)[0], answers[known]] = 1.0
    return target


def _local_targets(answers: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """One-hot targets inside a branch's answer subset."""
    return (answers.unsqueeze(1) == index.unsqueeze(0)).float()


class ClipVisualTokens(nn.Module):
    """A CLIP image tower -> ``[B, 1 + N, D]``: the pooled, projected image feature first, then (for a
    ViT, when ``patch_tokens``) the last block's patch tokens through the final norm and the
    projection. Other image towers (ResNets) give the pooled feature alone."""

    def __init__(self, clip: ClipModel, patch_tokens: bool = True, pool_grid: int | None = None) -> None:
        super().__init__()
        self.tower: VisionTower | None = None
        if patch_tokens:
            try:
                self.tower = vision_tower(clip)
            except ModelError:  # not a ViT: pooled feature only
                self.tower = None
        self.patch_tokens = self.tower is not None
        # registered, so fine-tuning and state dicts reach the image tower's weights
        self.visual = self.tower.module if self.tower is not None else clip.image_encoder
        self.pool_grid = pool_grid  # average the patch grid down to pool_grid x pool_grid regions (cheaper)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.tower is None:
            return F.normalize(self.visual(pixels), dim=-1).unsqueeze(1)
        tower = self.tower
        tokens = tower.run_blocks(tower.pre_norm(tower.embed(pixels)))
        patches = tower.project(tokens[:, tower.prefix_tokens:])
        if self.pool_grid:
            grid = tower.grid_for(pixels)
            maps = patches.transpose(1, 2).reshape(patches.shape[0], -1, grid[0], grid[1])
            patches = F.adaptive_avg_pool2d(maps, self.pool_grid).flatten(2).transpose(1, 2)
        pooled = tower.pool(tokens)
        # unit-normalised tokens keep the head's input scale the same for every backbone
        return F.normalize(torch.cat([pooled.unsqueeze(1), patches], dim=1), dim=-1)
