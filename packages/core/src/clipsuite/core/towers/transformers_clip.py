"""transformers' CLIP towers as steps (the only code that walks a transformers ``CLIPModel``).

Vision (``CLIPVisionModel`` / the ``vision_model`` of ``CLIPModel`` or
``CLIPVisionModelWithProjection``): embeddings (class token, positions, interpolated by transformers'
own ``interpolate_pos_encoding`` at other sizes) -> ``pre_layrnorm`` -> encoder layers ->
``post_layernorm`` on the class token -> ``visual_projection``. Patch tokens per layer are the
encoder's hidden states, through ``post_layernorm`` and the projection.

Text (``CLIPTextModel`` / the ``text_model`` of ``CLIPModel`` or ``CLIPTextModelWithProjection``):
token embeddings in, plus positions, the causal mask combined with the padding mask (built by
transformers' ``create_causal_mask`` for the model's attention implementation), the layers,
``final_layer_norm``, pooled at the end token exactly as ``CLIPTextModel`` pools (first
``eos_token_id``; the argmax of the ids for old configs with ``eos_token_id == 2``), projected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from clipsuite.core.backends.transformers_tokenizer import attention_mask, eos_positions
from clipsuite.core.errors import ModelError
from clipsuite.core.towers.base import BlockHooks, TextTower, VisionTower

if TYPE_CHECKING:
    from clipsuite.core.backends.transformers_clip import TransformersClipModel
    from clipsuite.core.models import ClipModel


def _inner(module: nn.Module, wrapper: str, parts: tuple[str, ...], what: str) -> Any:
    """The transformer itself: ``module`` or its ``wrapper`` attribute (``vision_model`` / ``text_model``).

    Typed ``Any``: it is walked by attribute (checked here), since transformers' class names and
    attribute types for these parts differ between its versions."""
    inner = getattr(module, wrapper, module)
    if not all(hasattr(inner, p) for p in parts):
        raise ModelError(f"{type(module).__name__} is not a transformers CLIP {what} tower")
    return inner


def _run_layer(layer: nn.Module, hidden: torch.Tensor, mask: Any, **kwargs: Any) -> torch.Tensor:
    out = layer(hidden, mask, **kwargs)
    return out[0] if isinstance(out, tuple) else out  # transformers 4.x layers return tuples


class TransformersVisionTower(VisionTower):
    """A transformers CLIP image tower; ``projection`` (``visual_projection``) may be None."""

    module: Any  # transformers' CLIP vision transformer (an nn.Module), walked by attribute: see _inner

    def __init__(self, vision: nn.Module, projection: nn.Linear | None, name: str = "model") -> None:
        self.module = _inner(vision, "vision_model", ("embeddings", "pre_layrnorm", "encoder", "post_layernorm"),
                             "vision")
        self.projection = projection
        self.name = name
        self.config = self.module.config

    # ---- shape facts -------------------------------------------------------------------------
    @property
    def width(self) -> int:
        return int(self.config.hidden_size)

    @property
    def depth(self) -> int:
        return len(self.module.encoder.layers)

    @property
    def output_dim(self) -> int:
        return int(self.projection.out_features) if self.projection is not None else self.width

    @property
    def patch_size(self) -> tuple[int, int]:
        size = int(self.config.patch_size)
        return size, size

    @property
    def grid_size(self) -> tuple[int, int]:
        side = int(self.config.image_size) // int(self.config.patch_size)
        return side, side

    @property
    def patch_embedding(self) -> nn.Conv2d:
        return self.module.embeddings.patch_embedding

    @property
    def dtype(self) -> torch.dtype:
        return self.patch_embedding.weight.dtype

    def adapt_input_bands(self, n_bands: int, rule: str = "repeat") -> None:
        super().adapt_input_bands(n_bands, rule)
        self.config.num_channels = int(n_bands)  # saved with the config, so the weights fit on load

    # ---- steps -------------------------------------------------------------------------------
    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        self.grid_for(pixels)  # one clear error for a size that is not a multiple of the patch
        # transformers' own embeddings: at the native size the table as is, otherwise interpolated
        return self.module.embeddings(pixels.to(self.dtype), interpolate_pos_encoding=True)

    def pre_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.module.pre_layrnorm(tokens)

    def _layer(self, index: int) -> Any:
        """Encoder layer ``index`` (a transformers ``CLIPEncoderLayer``, walked by attribute)."""
        return self.module.encoder.layers[index]

    def block(self, index: int, tokens: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        layer = self._layer(index)
        if not cls_only:
            return _run_layer(layer, tokens, None)
        # Only the class token's output is needed: attend from it alone (keys/values from all tokens)
        # and run the MLP on one token.
        attn = layer.self_attn
        normed = layer.layer_norm1(tokens)
        batch, length, width = normed.shape
        heads = attn.num_heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, heads, width // heads).transpose(1, 2)

        q = split(attn.q_proj(normed[:, :1]))
        k, v = split(attn.k_proj(normed)), split(attn.v_proj(normed))
        out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale).transpose(1, 2).reshape(batch, 1, width)
        cls = tokens[:, :1] + attn.out_proj(out)
        return cls + layer.mlp(layer.layer_norm2(cls))

    def vv_block(self, index: int, tokens: torch.Tensor) -> torch.Tensor:
        layer = self._layer(index)
        attn = layer.self_attn
        v = attn.v_proj(layer.layer_norm1(tokens))
        batch, length, width = v.shape
        v = v.view(batch, length, attn.num_heads, width // attn.num_heads).transpose(1, 2)
        out = F.scaled_dot_product_attention(v, v, v).transpose(1, 2).reshape(batch, length, width)
        return tokens + attn.out_proj(out)

    def post_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.module.post_layernorm(tokens)

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        out = self.module.post_layernorm(tokens)
        return self.projection(out) if self.projection is not None else out

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.project(tokens[:, 0])


class TransformersTextTower(TextTower):
    """A transformers CLIP text tower with embeddings in; ``projection`` (``text_projection``) may be None."""

    module: Any  # transformers' CLIP text transformer (an nn.Module), walked by attribute: see _inner

    def __init__(self, clip: ClipModel, text: nn.Module, projection: nn.Linear | None) -> None:
        super().__init__(clip)
        self.module = _inner(text, "text_model", ("embeddings", "encoder", "final_layer_norm"), "text")
        self.projection = projection
        self.config = self.module.config

    @property
    def width(self) -> int:
        return int(self.config.hidden_size)

    @property
    def depth(self) -> int:
        return len(self.module.encoder.layers)

    @property
    def eos_token_id(self) -> int | None:
        return self.config.eos_token_id

    @property
    def pad_id(self) -> int:
        pad = getattr(self.clip.tokenizer, "pad_id", self.config.pad_token_id)
        return int(pad if pad is not None else 0)

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.module.embeddings.token_embedding

    @property
    def blocks(self) -> list[nn.Module]:
        return list(self.module.encoder.layers)

    @property
    def padding_is_inert(self) -> bool:
        return True  # causal mask and pooling at the end token: nothing after it reaches the feature

    def attention_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        # CLIP tokenizers usually pad with the end token, so "!= pad_id" would drop the end token itself
        return attention_mask(tokens, self.eos_token_id)

    def token_count(self, text: str) -> int:
        tokens = self.clip.tokenizer([text], context_length=4 * self.clip.context_length + len(text))
        return int(self.attention_mask(tokens).sum())

    def _mask(self, hidden: torch.Tensor, tokens: torch.Tensor) -> Any:
        from transformers.masking_utils import create_causal_mask

        return create_causal_mask(config=self.config, inputs_embeds=hidden,
                                  attention_mask=self.attention_mask(tokens), cache=None)

    def encode_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor,
                          hooks: BlockHooks | None = None) -> torch.Tensor:
        tokens = tokens.to(embeddings.device)
        x = self.encode_states(embeddings, tokens, hooks)
        pooled = x[torch.arange(x.shape[0], device=x.device), eos_positions(tokens, self.eos_token_id).to(x.device)]
        return self.projection(pooled) if self.projection is not None else pooled

    def encode_states(self, embeddings: torch.Tensor, tokens: torch.Tensor,
                      hooks: BlockHooks | None = None, clip_skip: int = 0) -> torch.Tensor:
        """Every token's final state ``[N, L, width]`` (after ``final_layer_norm``, unpooled): what
        ``CLIPTextModel`` returns as ``last_hidden_state`` and diffusers' UNets attend to.
        ``clip_skip`` leaves out that many last layers (diffusers' meaning: 1 = the penultimate layer's
        states, then ``final_layer_norm``), as SD-2 reads OpenCLIP ViT-H's text tower."""
        if not 0 <= clip_skip < self.depth:
            raise ModelError(f"{self.clip.name}: clip_skip {clip_skip} for a text tower of {self.depth} layers")
        tokens = tokens.to(embeddings.device)
        positions = self.module.embeddings.position_embedding
        length = embeddings.shape[1]
        if length > positions.num_embeddings:
            raise ModelError(f"{self.clip.name}: {length} tokens but the text tower has "
                             f"{positions.num_embeddings} positions")
        dtype = positions.weight.dtype
        x = embeddings.to(dtype) + positions(self.module.embeddings.position_ids[:, :length])
        mask = self._mask(x, tokens)
        layers = list(self.module.encoder.layers)
        for i, layer in enumerate(layers[:len(layers) - clip_skip]):
            if hooks is not None and i in hooks:
                x = hooks[i](x)
            x = _run_layer(layer, x, mask, is_causal=True)
        return self.module.final_layer_norm(x)


def vision_tower(clip: ClipModel) -> VisionTower:
    """The factory ``towers.register_backend`` uses for ``backend == "transformers"``."""
    hf = cast("TransformersClipModel", clip).hf  # this backend's factory: clip is one
    return TransformersVisionTower(hf.vision_model, hf.visual_projection, clip.name)


def text_tower(clip: ClipModel) -> TextTower:
    hf = cast("TransformersClipModel", clip).hf  # this backend's factory: clip is one
    return TransformersTextTower(clip, hf.text_model, hf.text_projection)
