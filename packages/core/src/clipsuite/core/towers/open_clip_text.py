"""open_clip's two kinds of text tower with embeddings in.

- the built-in transformer (held by ``CLIP`` itself or by a ``TextTransformer``): add positions, run
  the blocks with the causal (and, where configured, padding) mask, ``ln_final``, pool with the
  tower's own ``text_global_pool`` type and EOS id, project;
- a Hugging Face tower (``HFTextEncoder``: BiomedCLIP's PubMedBERT, xlm-roberta): the vectors go in as
  ``inputs_embeds`` with the padding attention mask, then the tower's pooler and projection. Block
  hooks become forward pre-hooks on the HF layers for the duration of one call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from open_clip.hf_model import HFTextEncoder
from open_clip.transformer import text_global_pool
from torch import nn

from clipsuite.core.errors import ModelError
from clipsuite.core.towers.base import BlockHooks, TextTower

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel


class OpenClipTextTower(TextTower):
    """open_clip's own text transformer (``CLIP`` or ``CustomTextCLIP`` with a ``TextTransformer``)."""

    module: Any  # open_clip's TextTransformer or its CLIP itself (open_clip has no type information)

    def __init__(self, clip: ClipModel) -> None:
        super().__init__(clip)
        model = clip.model
        text = getattr(model, "text", None)
        owner = text if text is not None else model  # TextTransformer, or the CLIP model itself
        if not hasattr(owner, "token_embedding") or not hasattr(owner, "transformer"):
            raise ModelError(f"{clip.name}: no open_clip text transformer found")
        if getattr(owner, "cls_emb", None) is not None:
            raise ModelError(f"{clip.name}: text towers with an appended class token (CoCa) are not supported")
        self.module = owner
        # CLIP keeps the tower's settings as text_pool_type / text_eos_id; TextTransformer as pool_type / eos_id
        self.pool_type = str(getattr(owner, "text_pool_type", getattr(owner, "pool_type", "argmax")))
        self.eos_id = getattr(owner, "text_eos_id", getattr(owner, "eos_id", None))

    @property
    def width(self) -> int:
        return int(self.module.token_embedding.weight.shape[1])

    @property
    def depth(self) -> int:
        return len(self.module.transformer.resblocks)

    @property
    def pad_id(self) -> int:
        return int(getattr(self.module, "pad_id", 0))

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.module.token_embedding

    @property
    def blocks(self) -> list[nn.Module]:
        return list(self.module.transformer.resblocks)

    @property
    def padding_is_inert(self) -> bool:
        masked = self.module.attn_mask is not None or bool(getattr(self.module, "use_pad_mask", False))
        return self.pool_type in ("argmax", "eos", "first") and masked

    def _mask(self, tokens: torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor | None:
        owner = self.module
        mask = owner.attn_mask
        mask = mask[:length, :length] if mask is not None else None
        if getattr(owner, "use_pad_mask", False):
            # bidirectional TextTransformer with a padding mask: the tower builds it from the ids
            pad = owner._build_additive_mask(tokens, length, dtype)
            mask = pad if mask is None else mask.unsqueeze(0) + pad
        return mask

    def encode_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor,
                          hooks: BlockHooks | None = None) -> torch.Tensor:
        self.check_hooks(hooks)
        owner = self.module
        tokens = tokens.to(embeddings.device)
        cast = owner.transformer.get_cast_dtype()
        length = embeddings.shape[1]
        x = embeddings.to(cast) + owner.positional_embedding[:length].to(cast)
        mask = self._mask(tokens, length, x.dtype)
        for i, block in enumerate(owner.transformer.resblocks):
            if hooks is not None and i in hooks:
                x = hooks[i](x)
            x = block(x, attn_mask=mask)
        x = owner.ln_final(x)
        pooled = text_global_pool(x, tokens, self.pool_type, eos_token_id=self.eos_id)
        projection = owner.text_projection
        if projection is None:
            return pooled
        return projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection


@contextlib.contextmanager
def _pre_hooks(blocks: list[nn.Module], hooks: BlockHooks | None) -> Iterator[None]:
    """Install ``hooks`` as forward pre-hooks on ``blocks`` (HF layers take the hidden states as the
    first positional argument or as ``hidden_states``)."""

    def wrap(fn):  # torch's hook signature
        def pre_hook(module, args, kwargs):
            if args:
                return (fn(args[0]), *args[1:]), kwargs
            return args, dict(kwargs, hidden_states=fn(kwargs["hidden_states"]))
        return pre_hook

    handles = [blocks[i].register_forward_pre_hook(wrap(fn), with_kwargs=True) for i, fn in (hooks or {}).items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class OpenClipHFTextTower(TextTower):
    """open_clip's ``HFTextEncoder`` (a transformers encoder + pooler + projection)."""

    module: HFTextEncoder  # (open_clip has no type information: mypy sees Any)

    def __init__(self, clip: ClipModel) -> None:
        super().__init__(clip)
        text = getattr(clip.model, "text", None)
        if not isinstance(text, HFTextEncoder):
            raise ModelError(f"{clip.name}: not an open_clip Hugging Face text tower")
        self.module = text

    @property
    def width(self) -> int:
        return int(self.token_embedding.weight.shape[1])

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def pad_id(self) -> int:
        pad = self.module.config.pad_token_id
        return int(pad if pad is not None else 0)

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.module.transformer.get_input_embeddings()

    @property
    def blocks(self) -> list[nn.Module]:
        encoder = getattr(self.module.transformer, "encoder", self.module.transformer)
        for name in ("layer", "layers", "block"):
            if hasattr(encoder, name):
                return list(getattr(encoder, name))
        raise ModelError(f"{self.clip.name}: cannot find the Hugging Face text tower's layers")

    @property
    def padding_is_inert(self) -> bool:
        return True  # the attention mask keeps padding out of every token

    def encode_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor,
                          hooks: BlockHooks | None = None) -> torch.Tensor:
        self.check_hooks(hooks)
        mask = self.attention_mask(tokens.to(embeddings.device))
        with _pre_hooks(self.blocks, hooks):
            out = self.module.transformer(inputs_embeds=embeddings, attention_mask=mask)
        return self.module.proj(self.module.pooler(out, mask))
