"""WinCLIP and WinCLIP+ (Jeong et al., CVPR 2023) on any open_clip ViT.

Same computation as anomalib 2.x's ``WinClipModel`` (scores and maps agree to 1e-6 on shared
weights; see tests/anomaly/test_winclip_vs_anomalib.py), organised for speed:

* the token sequence (after the pre-norm) is computed once and windows gather from it (the norm
  acts on each token alone, so gathering after it equals anomalib's gathering before it);
* windows run through the blocks in chunks (bounded memory, cache friendly);
* the last block is evaluated for the CLS token only, since only CLS is pooled; in zero-shot mode
  the full-image pass does the same (its patch tokens are only needed for WinCLIP+).

Window attention stays within each window (CLS + k*k tokens), as the paper defines it. anomalib 2.x on
open_clip >= 3 permutes the windows to sequence-first before a batch-first transformer, which makes
every window attend across windows instead; the comparison test fixes that one permutation in the
oracle and documents it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from clipsuite.anomaly.methods.base import AnomalyResult, MethodSetup, References, gaussian_smooth, upsample
from clipsuite.anomaly.methods.prompts import prompt_ensemble, readable_class_name
from clipsuite.anomaly.methods.windows import harmonic_mean_over_windows, window_coverage, window_indices
from clipsuite.core.errors import InputError, ModelError
from clipsuite.core.models import ClipModel
from clipsuite.core.towers import vision_tower

TEMPERATURE = 0.07


class WinClip:
    """Zero-shot WinCLIP; after ``fit(reference_pixels)`` it is WinCLIP+ (k-shot)."""

    name = "winclip"
    references: ClassVar[References] = "optional"  # reference images add the WinCLIP+ branch
    trained: ClassVar[bool] = False

    @classmethod
    def build(cls, clip: ClipModel, setup: MethodSetup) -> WinClip:
        return cls(clip, class_name=setup.class_name, smoothing_sigma=setup.smoothing_sigma or 0.0)

    def __init__(self, clip: ClipModel, class_name: str = "object", scales: Sequence[int] = (2, 3),
                 temperature: float = TEMPERATURE, window_chunk: int = 1024, smoothing_sigma: float = 0.0) -> None:
        self.tower = vision_tower(clip)
        if not self.tower.pools_class_token:
            raise ModelError(f"{clip.name}: WinCLIP needs an image tower pooled at the class token")
        self.clip = clip
        self.scales = tuple(int(s) for s in scales)
        self.temperature = temperature
        self.window_chunk = window_chunk
        self.smoothing_sigma = smoothing_sigma
        self.grid = clip.patch_grid
        n_patches = self.grid[0] * self.grid[1]
        self.windows = [window_indices(self.grid, s) for s in self.scales]
        self.coverage = [window_coverage(w, n_patches).to(clip.device) for w in self.windows]
        # token index lists: CLS (0) + the window's patches (shifted past the class token)
        prefix = self.tower.prefix_tokens
        self.token_index = [torch.cat([torch.zeros(len(w), 1, dtype=torch.long), w + prefix], 1).to(clip.device)
                            for w in self.windows]
        self.text_embeddings = self.encode_class(class_name)
        self.reference_windows: list[torch.Tensor] | None = None
        self.reference_patches: torch.Tensor | None = None

    # ---- setup ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_class(self, class_name: str) -> torch.Tensor:
        """``[2, D]``: mean (unnormalised) text embedding of the normal and anomalous ensembles."""
        normal, anomalous = prompt_ensemble(readable_class_name(class_name))
        rows = [self.clip.encode_texts(prompts, normalize=False).mean(0) for prompts in (normal, anomalous)]
        return torch.stack(rows).to(self.clip.device)

    def set_class(self, class_name: str) -> None:
        self.text_embeddings = self.encode_class(class_name)

    @torch.no_grad()
    def fit(self, reference_pixels: torch.Tensor) -> WinClip:
        """Store window embeddings per scale and full-image patch tokens of K normal images."""
        if reference_pixels.ndim != 4 or reference_pixels.shape[0] == 0:
            raise InputError("WinCLIP+ needs at least one reference image")
        _, windows, patches = self.encode(reference_pixels, need_patches=True)
        assert patches is not None  # asked for
        self.reference_windows = [w.reshape(-1, w.shape[-1]) for w in windows]
        self.reference_patches = patches.reshape(-1, patches.shape[-1])
        return self

    @property
    def k_shot(self) -> int:
        return 0 if self.reference_patches is None else self.reference_patches.shape[0] // len(self.coverage[0])

    # ---- encoding ------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, pixels: torch.Tensor, need_patches: bool = False,
               ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """Image embedding ``[B, D]``, window embeddings per scale ``[B, n_win, D]`` and (if asked) the
        full image's patch tokens after ``ln_post``, unprojected ``[B, P, width]``."""
        tower, prefix = self.tower, self.tower.prefix_tokens
        with self.clip.autocast():
            tokens = tower.pre_norm(tower.embed(pixels.to(self.clip.device)))
            full = tower.run_blocks(tokens, cls_only_last=not need_patches)
            image = tower.project(full[:, 0]).float()
            patches = tower.post_norm(full[:, prefix:]).float() if need_patches else None
            windows = [self._window_embeddings(tokens, index) for index in self.token_index]
        return image, windows, patches

    def _window_embeddings(self, tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        batch, n_windows = tokens.shape[0], index.shape[0]
        gathered = tokens[:, index]                      # [B, n_win, 1 + k*k, width]
        flat = gathered.reshape(batch * n_windows, index.shape[1], tokens.shape[-1])
        pooled = [self.tower.run_blocks(flat[i:i + self.window_chunk], cls_only_last=True)[:, 0]
                  for i in range(0, flat.shape[0], self.window_chunk)]
        return self.tower.project(torch.cat(pooled)).float().reshape(batch, n_windows, -1)

    # ---- scoring -------------------------------------------------------------------------------------
    def _class_score(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Softmax(cos / T) probability of the anomalous prompt ensemble."""
        text = torch.nn.functional.normalize(self.text_embeddings.to(embeddings.device), dim=-1)
        cos = torch.nn.functional.normalize(embeddings, dim=-1) @ text.T
        return (cos / self.temperature).softmax(dim=-1)[..., 1]

    @staticmethod
    def _association(embeddings: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """min over memory of (1 - cos) / 2, ``[B, N]``."""
        cos = torch.nn.functional.normalize(embeddings, dim=-1) @ torch.nn.functional.normalize(memory, dim=-1).T
        return (1 - cos).min(dim=-1).values / 2

    @torch.no_grad()
    def predict(self, pixels: torch.Tensor) -> AnomalyResult:
        few_shot = self.reference_patches is not None
        image, windows, patches = self.encode(pixels, need_patches=few_shot)
        batch, (height, width) = image.shape[0], self.grid
        image_scores = self._class_score(image)
        # zero-shot: the image score is one more "scale"; scales combined by harmonic mean
        per_scale = [image_scores.view(-1, 1).expand(-1, height * width)]
        per_scale += [harmonic_mean_over_windows(self._class_score(w), cover)
                      for w, cover in zip(windows, self.coverage)]
        maps = len(per_scale) / (1 / torch.stack(per_scale)).sum(0)
        if few_shot:
            assert self.reference_windows is not None and self.reference_patches is not None and patches is not None
            visual = [self._association(patches, self.reference_patches)]
            visual += [harmonic_mean_over_windows(self._association(w, ref), cover)
                       for w, ref, cover in zip(windows, self.reference_windows, self.coverage)]
            few = torch.stack(visual).mean(0)
            maps = (maps + few) / 2
            image_scores = (image_scores + few.amax(dim=-1)) / 2
        maps = upsample(maps.reshape(batch, height, width), (pixels.shape[-2], pixels.shape[-1]))
        if self.smoothing_sigma > 0:
            maps = gaussian_smooth(maps, self.smoothing_sigma)
        return AnomalyResult(image_scores, maps)
