"""Save and load learned prompts and adapters: one small safetensors file with a JSON config.

The file holds the learned tensors only (never the CLIP weights); its metadata says the method, the
head kind, the class names, what is needed to rebuild the module, and the model it was trained on (its
spec and a fingerprint of its weights). Loading needs that model (another one is refused, naming both)
but none of the training code.

``load_classifier(path, model)`` returns a ``LearnedClassifier`` with ``.class_names`` and
``.logits(x)`` where ``x`` is normalised image features ``[N, D]`` or preprocessed pixels
``[N, 3, H, W]`` (MaPLe needs pixels, since its prompts run inside the image tower).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from clipsuite.core.adapt.cocoop import CoCoOpClassifier
from clipsuite.core.adapt.coop import CoOpClassifier, PromptConfig
from clipsuite.core.adapt.heads import HEADS, DescriptorHead, GDAHead, LinearHead, TipAdapterHead
from clipsuite.core.adapt.linear_probe import CLAPHead
from clipsuite.core.adapt.maple import MaPLeClassifier, MaPLeConfig
from clipsuite.core.checkpoints import load_tensors, read_config, save_tensors
from clipsuite.core.errors import InputError, first_line
from clipsuite.core.fingerprint import check_same_backbone
from clipsuite.core.models import ClipModel

FORMAT = "clipsuite-adapter"
VERSION = 1
PROMPT_KINDS = {"coop": CoOpClassifier, "cocoop": CoCoOpClassifier, "maple": MaPLeClassifier}


def _prompt_kind(module: nn.Module) -> str | None:
    for kind, cls in PROMPT_KINDS.items():
        if type(module) is cls:
            return kind
    return None


def save_adapter(path: str | os.PathLike[str], module: nn.Module, method: str, class_names: Sequence[str],
                 clip: ClipModel, extra: dict[str, Any] | None = None) -> Path:
    """Write ``module`` (a head from ``heads`` or a prompt learner) with its config; atomic."""
    path = Path(path)
    config: dict[str, Any] = {"format": FORMAT, "version": VERSION, "method": method, "class_names": list(class_names),
                              "embed_dim": clip.embed_dim, **clip.identity(), **(extra or {})}
    prompt_kind = _prompt_kind(module)
    if prompt_kind is not None:
        config["head"] = "prompt"
        config["prompt_kind"] = prompt_kind
        learner = cast("CoOpClassifier | CoCoOpClassifier | MaPLeClassifier", module)  # type(module) is one
        config["prompt_config"] = (learner.config.to_dict() if isinstance(learner, MaPLeClassifier)
                                   else learner.prompt.config.to_dict())
        tensors = {k: v for k, v in module.state_dict().items()}
    elif isinstance(module, CLAPHead):
        config["head"], config["params"] = "linear", module.params()
        tensors = {"weight": module.weight}
    else:
        config["head"] = getattr(module, "kind", None)
        if config["head"] not in HEADS:
            raise InputError(f"cannot save a {type(module).__name__}: not an adapt head or prompt learner")
        head = cast("LinearHead | TipAdapterHead | GDAHead | DescriptorHead", module)  # its kind is in HEADS
        config["params"] = head.params()
        tensors = {k: v for k, v in module.state_dict().items()}
    save_tensors(path, tensors, config)
    return path


class LearnedClassifier:
    """A loaded adapter bound to its CLIP model."""

    def __init__(self, module: nn.Module, clip: ClipModel, config: dict[str, Any], class_names: list[str]) -> None:
        self.module = module.eval()
        self.clip = clip
        self.config = config
        self.method: str = config["method"]
        self.class_names = class_names
        self.needs_pixels = isinstance(module, MaPLeClassifier)
        self._text: torch.Tensor | None = None

    @torch.no_grad()
    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, C]`` (on the CPU) for features ``[N, D]`` or pixels ``[N, 3, H, W]``."""
        if inputs.dim() == 4:
            if self.needs_pixels:
                return self.module(inputs.to(self.clip.device)).float().cpu()
            inputs = self.clip.encode_image_tensor(inputs)
        elif self.needs_pixels:
            raise InputError(f"the {self.method} classifier runs prompts inside the image tower: give it images "
                             "(pixels), not features")
        if inputs.dim() != 2 or inputs.shape[1] != self.clip.embed_dim:
            raise InputError(f"expected image features [N, {self.clip.embed_dim}] or pixels [N, 3, H, W], "
                             f"got {tuple(inputs.shape)}")
        inputs = inputs.to(self.clip.device).float()
        if isinstance(self.module, CoOpClassifier):  # text side is fixed: encode the prompts once
            if self._text is None:
                self._text = self.module.text_features()
            return (self.module.scale * inputs @ self._text.T).cpu()
        return self.module(inputs).float().cpu()

    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.logits(inputs).softmax(dim=-1)


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    tensors = load_tensors(path)
    config = read_config(path)
    if not config or config.get("format") != FORMAT:
        raise InputError(f"{path}: not a clipsuite adapter file (no '{FORMAT}' config in its metadata)")
    if int(config.get("version", 0)) > VERSION:
        raise InputError(f"{path}: adapter format version {config['version']} is newer than this clipsuite reads")
    return config, tensors


def load_classifier(path: str | os.PathLike[str], model: ClipModel,
                    class_names: Sequence[str] | None = None) -> LearnedClassifier:
    """Rebuild a saved adapter on ``model``. ``class_names`` re-targets a learned (non class-specific)
    prompt to other classes, as in base-to-novel evaluation; other heads keep their own classes."""
    path = Path(path)
    config, tensors = _read(path)
    if int(config.get("embed_dim", -1)) != model.embed_dim:
        raise InputError(f"{path}: adapter was trained for embed_dim {config.get('embed_dim')} "
                         f"({config.get('model')}), but the model has {model.embed_dim}")
    check_same_backbone(path, config, model)  # same shapes, other weights: it would score, silently wrong
    names = list(config["class_names"])
    head = config.get("head")
    if head == "prompt":
        module, names = _load_prompt(path, model, config, tensors, class_names)
    elif head in HEADS:
        if class_names is not None and list(class_names) != names:
            raise InputError(f"{path}: a {config['method']} classifier is tied to its {len(names)} training classes; "
                             "only learned prompts transfer to other class names")
        module = _build_head(path, head, tensors, config.get("params", {}))
        module = module.to(model.device)
    else:
        raise InputError(f"{path}: unknown adapter head '{head}'")
    return LearnedClassifier(module, model, config, names)


def _build_head(path: Path, head: str, tensors: dict[str, torch.Tensor], params: dict[str, Any]) -> nn.Module:
    try:
        if head == "linear":
            return HEADS[head](tensors["weight"], tensors.get("bias"), params["scale"])
        if head == "tip":
            return HEADS[head](tensors["zero_shot"], tensors["keys"], tensors["values"], params["alpha"],
                               params["beta"], params["scale"])
        if head == "gda":
            return HEADS[head](tensors["zero_shot"], tensors["weight"], tensors["bias"], params["alpha"],
                               params["scale"])
        return HEADS[head](tensors["embeddings"], tensors["owner"], params["n_classes"], params["scale"])
    except KeyError as error:
        raise InputError(f"{path}: the {head} adapter lacks '{error.args[0]}'") from None


def _load_prompt(path: Path, model: ClipModel, config: dict[str, Any], tensors: dict[str, torch.Tensor],
                 class_names: Sequence[str] | None) -> tuple[nn.Module, list[str]]:
    kind = config.get("prompt_kind")
    names = list(class_names) if class_names is not None else list(config["class_names"])
    settings = dict(config.get("prompt_config", {}))
    if kind == "maple":
        module: nn.Module = MaPLeClassifier(model, names, MaPLeConfig(**settings))
    elif kind in ("coop", "cocoop"):
        prompt = PromptConfig(**settings)
        if prompt.csc and names != list(config["class_names"]):
            raise InputError(f"{path}: class-specific contexts cannot be moved to other class names")
        module = PROMPT_KINDS[kind](model, names, prompt)
    else:
        raise InputError(f"{path}: unknown prompt learner '{kind}'")
    try:
        module.load_state_dict({k: v.to(model.device) for k, v in tensors.items()}, strict=True)
    except RuntimeError as error:
        raise InputError(f"{path}: saved prompt does not fit this model ({first_line(error, 120)})") from None
    return module, names
