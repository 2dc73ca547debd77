"""Encode learned prompt embeddings through either open_clip text tower.

Prompt learners replace some token embeddings of a tokenised prompt with learned vectors, so they need
the text tower split in two: token embeddings in, pooled and projected features out. open_clip has
two kinds of tower:

- the built-in text transformer (``CLIP`` or ``TextTransformer``): add positions, run the blocks with
  the causal mask, ``ln_final``, pool at the end-of-text token (found from the token ids), project;
- a Hugging Face tower (``HFTextEncoder``: BiomedCLIP's PubMedBERT, xlm-roberta): feed the vectors as
  ``inputs_embeds`` with the padding attention mask, then the tower's pooler and projection.

Deep prompts (MaPLe) overwrite a span of the hidden states at the input of chosen blocks; this is done
with forward pre-hooks so both towers (and the vision tower) share one mechanism.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from open_clip.hf_model import HFTextEncoder
from open_clip.transformer import text_global_pool

from clipsuite.core.errors import InputError, ModelError
from clipsuite.core.models import ClipModel


@contextlib.contextmanager
def replace_tokens(blocks: Sequence[torch.nn.Module], prompts: Sequence[torch.Tensor | None],
                   start: int | None) -> Iterator[None]:
    """While active, block ``i`` sees ``prompts[i]`` (``[n, W]`` or ``[B, n, W]``) written over its
    input tokens ``start .. start + n`` (``start=None``: the last ``n`` tokens)."""

    def make_hook(prompt: torch.Tensor):  # type: ignore[no-untyped-def]
        def hook(module, args, kwargs):  # type: ignore[no-untyped-def]
            hidden = args[0] if args else kwargs["hidden_states"]
            n = prompt.shape[-2]
            begin = hidden.shape[1] - n if start is None else start
            value = prompt.to(hidden.dtype)
            value = value.expand(hidden.shape[0], -1, -1) if value.dim() == 2 else value
            hidden = torch.cat([hidden[:, :begin], value, hidden[:, begin + n:]], dim=1)
            if args:
                return (hidden, *args[1:]), kwargs
            kwargs = dict(kwargs, hidden_states=hidden)
            return args, kwargs
        return hook

    handles = [block.register_forward_pre_hook(make_hook(p), with_kwargs=True)
               for block, p in zip(blocks, prompts) if p is not None]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class TextTower:
    """The text tower of a ``ClipModel`` as embeddings -> features, for both tower kinds."""

    def __init__(self, clip: ClipModel) -> None:
        self.clip = clip
        model = clip.model
        text = getattr(model, "text", None)
        if isinstance(text, HFTextEncoder):
            self.kind = "hf"
            self.hf = text
            self.pad_id = int(text.config.pad_token_id if text.config.pad_token_id is not None else 0)
            self.token_embedding = text.transformer.get_input_embeddings()
        else:
            owner = text if text is not None else model  # TextTransformer, or the CLIP model itself
            if getattr(owner, "cls_emb", None) is not None:
                raise ModelError(f"{clip.name}: text towers with an appended class token (CoCa) are not supported")
            self.kind = "builtin"
            self.owner = owner
            self.pad_id = 0
            self.token_embedding = owner.token_embedding
        self.width = int(self.token_embedding.weight.shape[1])

    # ---- structure -----------------------------------------------------------------------------
    @property
    def blocks(self) -> list[torch.nn.Module]:
        if self.kind == "hf":
            encoder = getattr(self.hf.transformer, "encoder", self.hf.transformer)
            for name in ("layer", "layers", "block"):
                if hasattr(encoder, name):
                    return list(getattr(encoder, name))
            raise ModelError(f"{self.clip.name}: cannot find the Hugging Face text tower's layers")
        return list(self.owner.transformer.resblocks)

    @property
    def padding_is_inert(self) -> bool:
        """True when trailing padding cannot change the pooled feature (so it may be trimmed): HF towers
        mask it out; built-in towers need a causal or padding mask and pooling at a real token."""
        if self.kind == "hf":
            return True
        pool_type = getattr(self.owner, "text_pool_type", getattr(self.owner, "pool_type", "argmax"))
        masked = getattr(self.owner, "attn_mask", None) is not None or getattr(self.owner, "use_pad_mask", False)
        return pool_type in ("argmax", "eos", "first") and bool(masked)

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
        """Token embeddings (no positions) ``[N, L, W]``."""
        return self.token_embedding(tokens.to(self.clip.device))

    # ---- encoding ------------------------------------------------------------------------------
    def encode(self, embeddings: torch.Tensor, tokens: torch.Tensor,
               deep_prompts: Sequence[torch.Tensor | None] | None = None, deep_start: int = 1,
               normalize: bool = True) -> torch.Tensor:
        """Features ``[N, D]`` of prompts given as embeddings ``[N, L, W]`` with their token ids
        ``[N, L]`` (used for the attention mask and the pooling position only).

        ``deep_prompts[i]`` (``[n, W]``) replaces tokens ``deep_start..deep_start+n`` at block ``i``'s input.
        """
        tokens = tokens.to(embeddings.device)
        blocks = self.blocks
        prompts = list(deep_prompts or [])
        context = replace_tokens(blocks[: len(prompts)], prompts, deep_start) if prompts else contextlib.nullcontext()
        with context:
            features = self._encode_hf(embeddings, tokens) if self.kind == "hf" else self._encode_builtin(
                embeddings, tokens)
        return torch.nn.functional.normalize(features, dim=-1) if normalize else features

    def _encode_hf(self, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != self.pad_id).long()
        out = self.hf.transformer(inputs_embeds=embeddings, attention_mask=mask)
        return self.hf.proj(self.hf.pooler(out, mask))

    def _encode_builtin(self, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        owner = self.owner
        cast = owner.transformer.get_cast_dtype()
        length = embeddings.shape[1]
        x = embeddings.to(cast) + owner.positional_embedding[:length].to(cast)
        if hasattr(owner, "_build_additive_mask") and getattr(owner, "use_pad_mask", False):
            # TextTransformer with a padding mask: let it build the mask from the token ids
            _, attn_mask = owner._embeds(tokens)
        else:
            attn_mask = owner.attn_mask
            attn_mask = attn_mask[:length, :length] if attn_mask is not None else None
        x = owner.transformer(x, attn_mask=attn_mask)
        x = owner.ln_final(x)
        pool_type = getattr(owner, "text_pool_type", getattr(owner, "pool_type", "argmax"))
        eos_id = getattr(owner, "text_eos_id", getattr(owner, "eos_id", None))
        pooled = text_global_pool(x, tokens, pool_type, eos_token_id=eos_id)
        projection = owner.text_projection
        if projection is None:
            return pooled
        return projection(pooled) if isinstance(projection, torch.nn.Linear) else pooled @ projection
