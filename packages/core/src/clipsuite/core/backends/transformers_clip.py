"""CLIP as transformers holds it (``CLIPModel``: PubMedCLIP's weights, diffusers' text/image encoders)
behind the same ``ClipModel`` API as open_clip models.

``TransformersCLIP`` wraps a ``transformers.CLIPModel`` with open_clip's model surface
(``encode_image`` / ``encode_text`` / ``logit_scale`` / ``forward``), so the encoders, contrastive
training and everything written against that surface work unchanged; ``TransformersClipModel`` is
the ``ClipModel`` (``backend == "transformers"``) with preprocessing from the folder's
``preprocessor_config.json``, patch tokens per layer (through ``towers.transformers_clip``), and
save as a transformers folder (which ``transformers.CLIPModel.from_pretrained`` reads too).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from clipsuite.core.backends.transformers_preprocess import (
    ClipImageTransform,
    load_transform,
    transform_to_dict,
    with_image_size,
)
from clipsuite.core.backends.transformers_source import HF_CONFIG, TINY_TOKENIZER_DIR
from clipsuite.core.backends.transformers_tokenizer import ClipTokenizer, attention_mask
from clipsuite.core.backends.transformers_weights import load_weights
from clipsuite.core.checkpoints import atomic_write_bytes, atomic_write_json
from clipsuite.core.errors import ModelError, first_line
from clipsuite.core.model_specs import ModelSource
from clipsuite.core.models import ClipModel
from clipsuite.core.precision import resolve_precision

if TYPE_CHECKING:
    from transformers import CLIPModel

BACKEND = "transformers"
# a SigLIP-trained bias (core.contrastive adds one) has no field in CLIPConfig: it rides in config.json
LOGIT_BIAS_KEY = "clipsuite_logit_bias"


class TransformersCLIP(nn.Module):
    """A ``transformers.CLIPModel`` with open_clip's ``CLIP`` surface. Parameters live in ``self.hf``."""

    def __init__(self, hf: CLIPModel) -> None:
        super().__init__()
        self.hf = hf

    # open_clip names for the parts (properties, so the state dict has each tensor once)
    @property
    def visual(self) -> nn.Module:
        return self.hf.vision_model

    @property
    def text(self) -> nn.Module:
        return self.hf.text_model

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.hf.logit_scale

    # LiT-style locking as open_clip's CLIP has it: a tower is frozen together with its projection
    # (transformers keeps the projections beside the towers, so freezing ``visual`` alone would train them)
    def lock_image_tower(self) -> None:
        for part in (self.hf.vision_model, self.hf.visual_projection):
            part.requires_grad_(False)

    def lock_text_tower(self) -> None:
        for part in (self.hf.text_model, self.hf.text_projection):
            part.requires_grad_(False)

    @property
    def eos_token_id(self) -> int | None:
        return self.hf.text_model.config.eos_token_id

    @property
    def image_size(self) -> int:
        return int(self.hf.vision_model.config.image_size)

    def encode_image(self, pixels: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        # interpolate_pos_encoding: at the native size transformers uses the table as is (same result);
        # at another size (load_model(image_size=...)) it resamples the positions bicubically
        out = self.hf.vision_model(pixel_values=pixels, interpolate_pos_encoding=True)
        features = self.hf.visual_projection(out.pooler_output)
        return nn.functional.normalize(features, dim=-1) if normalize else features

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        mask = attention_mask(tokens, self.eos_token_id)
        out = self.hf.text_model(input_ids=tokens, attention_mask=mask)
        features = self.hf.text_projection(out.pooler_output)
        return nn.functional.normalize(features, dim=-1) if normalize else features

    def forward(self, image: torch.Tensor | None = None, text: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """As open_clip's ``CLIP.forward``: normalised features and ``logit_scale.exp()``."""
        image_features = self.encode_image(image, normalize=True) if image is not None else None
        text_features = self.encode_text(text, normalize=True) if text is not None else None
        return image_features, text_features, self.logit_scale.exp()


class TransformersClipModel(ClipModel):
    """A ``ClipModel`` on a transformers ``CLIPModel`` (see the module docstring)."""

    backend = BACKEND
    model: TransformersCLIP

    def __init__(self, model: TransformersCLIP, tokenizer: ClipTokenizer, config: dict[str, Any], name: str,
                 device: torch.device, precision: str, transform: ClipImageTransform) -> None:
        super().__init__(model, tokenizer, config, name, device, precision)
        # the folder's own preprocessing, exactly (the base class built open_clip's approximation)
        self.image_transform = transform
        self.preprocess = transform
        self.preprocess_cfg = transform.preprocess_cfg()
        self.preprocess_train = transform.train_transform()

    @property
    def hf(self) -> CLIPModel:
        """The ``transformers.CLIPModel``."""
        return self.model.hf

    @property
    def patch_grid(self) -> tuple[int, int]:
        patch = int(self.hf.vision_model.config.patch_size)
        height, width = self.image_transform.output_size
        return height // patch, width // patch

    def save(self, path: str | os.PathLike[str]) -> Path:
        """A transformers folder: ``config.json`` + ``model.safetensors`` + tokenizer files +
        ``preprocessor_config.json``; read by ``load_model(path)`` and by ``CLIPModel.from_pretrained``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.hf.state_dict().items()}
        atomic_write_bytes(folder / "model.safetensors", safetensors_bytes(state, metadata={"format": "pt"}))
        self.tokenizer.save(folder)
        atomic_write_json(folder / "preprocessor_config.json", transform_to_dict(self.image_transform))
        config = self.hf.config.to_dict()
        bias = getattr(self.model, "logit_bias", None)
        if isinstance(bias, torch.Tensor):
            config[LOGIT_BIAS_KEY] = float(bias.detach())
        atomic_write_json(folder / HF_CONFIG, config)
        return folder


# ---- construction ---------------------------------------------------------------------------------
def _hf_config(source: ModelSource, quick_gelu: bool) -> Any:
    from transformers import CLIPConfig

    data = copy.deepcopy(source.config or {})
    data.pop(LOGIT_BIAS_KEY, None)
    if quick_gelu:
        for key in ("text_config", "vision_config"):
            data.setdefault(key, {})["hidden_act"] = "quick_gelu"
    try:
        return CLIPConfig.from_dict(data)
    except (TypeError, ValueError, KeyError) as error:
        raise ModelError(f"{source.name}: not a valid CLIPConfig ({first_line(error)})") from None


def _summary(config: Any, context_length: int, transform: ClipImageTransform) -> dict[str, Any]:
    """open_clip-shaped facts (``embed_dim``, tower sizes) for code that reads ``ClipModel.config``."""
    text, vision = config.text_config, config.vision_config
    preprocess = transform.preprocess_cfg()
    return {
        "backend": BACKEND,
        "model_cfg": {
            "embed_dim": int(config.projection_dim),
            "vision_cfg": {"image_size": int(vision.image_size), "patch_size": int(vision.patch_size),
                           "layers": int(vision.num_hidden_layers), "width": int(vision.hidden_size)},
            "text_cfg": {"context_length": context_length, "vocab_size": int(text.vocab_size),
                         "layers": int(text.num_hidden_layers), "width": int(text.hidden_size)},
        },
        "preprocess_cfg": {"size": list(preprocess.size), "mean": list(preprocess.mean), "std": list(preprocess.std),
                           "interpolation": preprocess.interpolation, "resize_mode": preprocess.resize_mode},
        "transformers_config": config.to_dict(),
    }


def build_clip_model(source: ModelSource, device: torch.device, precision: str, quick_gelu: bool = False,
                     image_size: int | None = None) -> TransformersClipModel:
    """The ``ClipModel`` for a resolved transformers source (see ``backends.transformers_source``)."""
    from transformers import CLIPModel

    config = _hf_config(source, quick_gelu)
    context_length = int(config.text_config.max_position_embeddings)
    tokenizer = ClipTokenizer.from_folder(source.config_dir or TINY_TOKENIZER_DIR, context_length)
    if tokenizer.vocab_size > int(config.text_config.vocab_size):
        raise ModelError(f"{source.name}: the tokenizer has {tokenizer.vocab_size} tokens but the text tower only "
                         f"{config.text_config.vocab_size} embeddings")
    transform = load_transform(source.config_dir, int(config.vision_config.image_size))
    if image_size is not None:
        transform = with_image_size(transform, image_size)
    # without weights the model is the same random model on every load (seed 0, caller's RNG untouched)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        hf = CLIPModel(config)
    if source.weights is not None:
        load_weights(hf, source.weights, source.name)
    model = TransformersCLIP(hf)
    bias = (source.config or {}).get(LOGIT_BIAS_KEY)
    if bias is not None:
        model.logit_bias = nn.Parameter(torch.tensor(float(bias)))
    model = model.to(device=device, dtype=resolve_precision(precision, device).weight_dtype)
    summary = _summary(config, context_length, transform)
    return TransformersClipModel(model, tokenizer, summary, source.name, device, precision, transform)
