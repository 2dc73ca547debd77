"""The tower interface: a CLIP image or text tower as steps, whatever library holds the weights.

A method that needs more than ``ClipModel.encode_images`` / ``encode_texts`` (patch tokens per layer,
deep prompts, windows, v-v attention, embeddings fed into the text tower) asks for a tower
(``clipsuite.core.towers.vision_tower(clip)`` / ``text_tower(clip)``) and uses only these methods.
Each backend (open_clip here; transformers' ``CLIPModel`` in its own module) implements them; nothing
outside the tower modules walks a model's blocks.

Conventions every implementation keeps:

* token tensors are batch-first ``[B, L, width]``; the vision sequence is ``prefix_tokens`` (the class
  token) followed by the ``h * w`` patch tokens in row-major order;
* features are returned unnormalised and in the compute dtype (callers ``.float()`` / normalise);
* nothing here opens ``torch.no_grad`` or autocast: callers decide (``ClipModel.autocast()``), so a
  prompt learner gets gradients through the same code that inference uses;
* a *block hook* is ``Callable[[Tensor], Tensor]``: it gets the hidden states entering a block and
  returns the states the block should see (deep prompts write over a span; a capture hook returns
  its input unchanged). Hooks are passed as ``{block_index: hook}``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from clipsuite.core.errors import InputError, ModelError
from clipsuite.core.towers.bands import adapt_conv

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel

BlockHook = Callable[[torch.Tensor], torch.Tensor]
BlockHooks = Mapping[int, BlockHook]


class VisionTower(abc.ABC):
    """An image tower as steps: ``embed -> pre_norm -> block 0..depth-1 -> pool`` equals the model's own
    image encoder (``forward``). ``project`` maps any tokens into the joint image-text space."""

    #: the ``nn.Module`` that owns the tower's parameters (to freeze, fine-tune or register it)
    module: nn.Module

    # ---- shape facts -------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def width(self) -> int:
        """Token width inside the blocks."""

    @property
    @abc.abstractmethod
    def depth(self) -> int:
        """Number of transformer blocks."""

    @property
    @abc.abstractmethod
    def output_dim(self) -> int:
        """Width of ``pool`` / ``project`` outputs (the joint embedding size)."""

    @property
    @abc.abstractmethod
    def patch_size(self) -> tuple[int, int]:
        """Patch height and width in pixels."""

    @property
    @abc.abstractmethod
    def grid_size(self) -> tuple[int, int]:
        """The native patch grid (the one the position embeddings were trained for)."""

    @property
    @abc.abstractmethod
    def patch_embedding(self) -> nn.Conv2d:
        """The patch-embedding convolution (``[width, in_chans, ph, pw]``)."""

    @property
    def in_chans(self) -> int:
        """Input channels the patch embedding takes (3, or N after ``adapt_input_bands``)."""
        return int(self.patch_embedding.in_channels)

    def adapt_input_bands(self, n_bands: int, rule: str = "repeat") -> None:
        """Rebuild the RGB patch embedding for ``n_bands`` inputs in place (see ``towers.bands``).
        Use ``ClipModel.adapt_input_bands``, which also records the band count in the config."""
        adapt_conv(self.patch_embedding, n_bands, rule)

    @property
    def prefix_tokens(self) -> int:
        """Tokens before the patches (the class token)."""
        return 1

    @property
    def pools_class_token(self) -> bool:
        """True when ``pool`` reads the class token alone (so the last block may run ``cls_only``)."""
        return True

    @property
    @abc.abstractmethod
    def dtype(self) -> torch.dtype:
        """Dtype of the weights; ``embed`` casts pixels to it."""

    def grid_for(self, pixels: torch.Tensor) -> tuple[int, int]:
        """Patch grid of ``pixels`` ``[B, C, H, W]`` (other sizes than the native one are allowed)."""
        (ph, pw), (h, w) = self.patch_size, pixels.shape[-2:]
        if h % ph or w % pw:
            raise InputError(f"image size {h}x{w} is not a multiple of the patch size {ph}x{pw}")
        return h // ph, w // pw

    # ---- steps -------------------------------------------------------------------------------
    @abc.abstractmethod
    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Patch embedding + class token + position embeddings (interpolated for a grid other than
        ``grid_size``): ``[B, prefix_tokens + h * w, width]``, *before* ``pre_norm``."""

    @abc.abstractmethod
    def pre_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        """The norm between the embeddings and the first block (identity where the model has none)."""

    @abc.abstractmethod
    def block(self, index: int, tokens: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        """Block ``index`` on ``tokens``. ``cls_only``: return only the first token's output
        ``[B, 1, width]`` (keys/values still from all tokens), for a last block whose patch outputs
        are never used."""

    @abc.abstractmethod
    def vv_block(self, index: int, tokens: torch.Tensor) -> torch.Tensor:
        """Block ``index``'s value-value attention path as DPAM uses it: ``x + attn_vv(norm(x))`` with
        ``softmax(v v^T / sqrt(d))`` over the block's own value and output projections, no MLP."""

    def run_blocks(self, tokens: torch.Tensor, start: int = 0, stop: int | None = None,
                   hooks: BlockHooks | None = None, cls_only_last: bool = False) -> torch.Tensor:
        """Blocks ``start .. stop - 1`` (default: all). ``hooks[i]`` rewrites the input of block ``i``;
        ``cls_only_last`` evaluates the last block run for the class token only."""
        stop = self.depth if stop is None else stop
        for i in range(start, stop):
            if hooks is not None and i in hooks:
                tokens = hooks[i](tokens)
            tokens = self.block(i, tokens, cls_only=cls_only_last and i == stop - 1)
        return tokens

    @abc.abstractmethod
    def post_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        """The final norm (``ln_post``) on any tokens, unprojected."""

    @abc.abstractmethod
    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """``post_norm`` then the image projection, per token: ``[..., width] -> [..., output_dim]``."""

    @abc.abstractmethod
    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Final sequence ``[B, L, width]`` -> the image feature ``[B, output_dim]``, pooled the way the
        model pools (class token, or average)."""

    # ---- whole passes ------------------------------------------------------------------------
    def forward(self, pixels: torch.Tensor, hooks: BlockHooks | None = None) -> torch.Tensor:
        """Image features ``[B, output_dim]``; without hooks equal to the model's own encoder."""
        return self.pool(self.run_blocks(self.pre_norm(self.embed(pixels)), hooks=hooks))

    def patch_tokens(self, pixels: torch.Tensor, layers: Sequence[int], project: bool = True,
                     ) -> list[torch.Tensor]:
        """Patch tokens ``[B, h * w, width or output_dim]`` after each block in ``layers`` (0-based,
        negatives from the end), projected into the joint space when ``project``. Stops after the
        deepest block asked for."""
        wanted = [layer % self.depth for layer in layers]
        tokens = self.pre_norm(self.embed(pixels))
        taken: dict[int, torch.Tensor] = {}
        for i in range(max(wanted) + 1):
            tokens = self.block(i, tokens)
            if i in wanted:
                taken[i] = tokens[:, self.prefix_tokens:]
        return [self.project(taken[i]) if project else taken[i] for i in wanted]


class TextTower(abc.ABC):
    """A text tower with embeddings in: ``embed(tokens)`` gives the token embeddings a prompt learner
    edits, ``encode_embeddings`` runs them (plus positions, mask, blocks, final norm, pooling and
    projection, each the way this tower does it) to features. ``encode(tokens)`` equals the model's
    own text encoder."""

    module: nn.Module

    def __init__(self, clip: ClipModel) -> None:
        self.clip = clip

    # ---- shape facts -------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def width(self) -> int:
        """Token-embedding width."""

    @property
    @abc.abstractmethod
    def depth(self) -> int:
        """Number of transformer blocks."""

    @property
    @abc.abstractmethod
    def pad_id(self) -> int:
        """The padding token id (what the attention mask and ``token_count`` leave out)."""

    @property
    @abc.abstractmethod
    def token_embedding(self) -> nn.Embedding:
        """The input word-embedding table."""

    @property
    @abc.abstractmethod
    def blocks(self) -> list[nn.Module]:
        """The blocks in order (for forward hooks that only read, e.g. to capture hidden states)."""

    @property
    @abc.abstractmethod
    def padding_is_inert(self) -> bool:
        """True when trailing padding cannot change the pooled feature, so it may be trimmed."""

    # ---- tokens ------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.clip.tokenize(texts)

    def token_count(self, text: str) -> int:
        """Tokens ``text`` needs including start/end tokens, counted without truncation."""
        tokens = self.clip.tokenizer([text], context_length=4 * self.clip.context_length + len(text))
        return int((tokens != self.pad_id).sum())

    def check_fits(self, prompt: str, what: str) -> None:
        needed = self.token_count(prompt)
        if needed > self.clip.context_length:
            raise InputError(f"{what}: the prompt '{prompt[:60]}' needs {needed} tokens but the text context holds "
                             f"{self.clip.context_length}; the tokenizer would cut it (shorten the class name)")

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embeddings (no positions) ``[N, L, width]``."""
        return self.token_embedding(tokens.to(self.token_embedding.weight.device))

    def attention_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[N, L]`` long: 1 for real tokens, 0 for padding."""
        return (tokens != self.pad_id).long()

    # ---- encoding ----------------------------------------------------------------------------
    def check_hooks(self, hooks: BlockHooks | None) -> None:
        """``ModelError`` for a hook on a block this tower does not have (it would never run)."""
        wrong = sorted(i for i in (hooks or {}) if not 0 <= i < self.depth)
        if wrong:
            raise ModelError(f"{self.clip.name}: a hook for text block {wrong[0]}, "
                             f"but the tower has {self.depth} blocks")

    @abc.abstractmethod
    def encode_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor,
                          hooks: BlockHooks | None = None) -> torch.Tensor:
        """Features ``[N, output_dim]`` (unnormalised) of prompts given as embeddings ``[N, L, width]``
        with their token ids ``[N, L]`` (used for the attention mask and the pooling position only).
        ``hooks[i]`` rewrites the hidden states entering block ``i``."""

    def encode_states(self, embeddings: torch.Tensor, tokens: torch.Tensor,
                      hooks: BlockHooks | None = None, clip_skip: int = 0) -> torch.Tensor:
        """Every token's final state ``[N, L, width]`` before pooling (the sequence a diffusion UNet
        attends to); ``clip_skip`` last layers left out (1 = penultimate). Backends that can give it
        override this."""
        raise ModelError(f"{self.clip.name}: this text tower does not expose per-token states")

    def encode(self, tokens: torch.Tensor, hooks: BlockHooks | None = None) -> torch.Tensor:
        """Features of token ids; without hooks equal to the model's own text encoder."""
        return self.encode_embeddings(self.embed(tokens), tokens, hooks)
