"""Zero-shot classification: class names x templates (or LLM descriptions) -> a [D, C] classifier.

``build_classifier`` matches ``open_clip.build_zero_shot_classifier``: per class, the mean of the
normalised prompt embeddings, normalised again. ``build_descriptor_classifier`` keeps every prompt
and scores a class by the mean of its per-descriptor similarities (Menon & Vondrick).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from clipsuite.core.errors import InputError
from clipsuite.core.models import ClipModel, ImageInput
from clipsuite.core.prompts import fill, resolve_templates


def _check_class_names(model: ClipModel, class_names: Sequence[str]) -> None:
    if not class_names:
        raise InputError("no class names given")
    duplicates = {c for c in class_names if list(class_names).count(c) > 1}
    if duplicates:
        raise InputError(f"class name '{sorted(duplicates)[0]}' is given twice")


def check_prompt_lengths(model: ClipModel, prompts: Sequence[str]) -> None:
    """A prompt longer than the text context is silently cut by the tokenizer: refuse it instead."""
    tokenizer = model.tokenizer
    encode = getattr(tokenizer, "encode", None)
    inner = getattr(tokenizer, "tokenizer", None)
    for prompt in prompts:
        if encode is not None:  # open_clip SimpleTokenizer: + start and end tokens
            length = len(encode(prompt)) + 2
        elif inner is not None:  # Hugging Face tokenizer wrapper
            length = len(inner(prompt)["input_ids"])
        else:
            return
        if length > model.context_length:
            raise InputError(f"prompt '{prompt[:60]}' needs {length} tokens but the model's text context holds "
                             f"{model.context_length}; shorten the class name or template")


@torch.no_grad()
def build_classifier(model: ClipModel, class_names: Sequence[str], templates: str | Sequence[str] | None = None,
                     descriptions: Mapping[str, Sequence[str]] | None = None) -> torch.Tensor:
    """``[embed_dim, n_classes]`` weights; ``descriptions`` (CuPL sentences) replace the templates."""
    _check_class_names(model, class_names)
    template_list = resolve_templates(templates)
    columns = []
    for name in class_names:
        prompts = list(descriptions[name]) if descriptions is not None else fill(template_list, name)
        check_prompt_lengths(model, prompts)
        embeddings = model.encode_texts(prompts)  # normalised per prompt
        columns.append(torch.nn.functional.normalize(embeddings.mean(dim=0), dim=-1))
    return torch.stack(columns, dim=1)


@dataclass
class DescriptorClassifier:
    """All descriptor embeddings ``[P, D]`` and the class each belongs to; scores average per class."""

    embeddings: torch.Tensor
    owner: torch.Tensor
    n_classes: int

    def logits(self, image_features: torch.Tensor, scale: float) -> torch.Tensor:
        """Per-class mean of ``scale * cos`` over the class's descriptors (``scale``: usually
        ``ClipModel.logit_scale()``)."""
        sims = scale * image_features @ self.embeddings.T  # [N, P]
        totals = torch.zeros(image_features.shape[0], self.n_classes).index_add_(1, self.owner, sims)
        counts = torch.bincount(self.owner, minlength=self.n_classes).clamp(min=1)
        return totals / counts


@torch.no_grad()
def build_descriptor_classifier(model: ClipModel, class_names: Sequence[str],
                                descriptors: Mapping[str, Sequence[str]]) -> DescriptorClassifier:
    from clipsuite.core.prompts import descriptor_prompts

    _check_class_names(model, class_names)
    prompts, owner = [], []
    for index, name in enumerate(class_names):
        class_prompts = descriptor_prompts(name, descriptors[name])
        check_prompt_lengths(model, class_prompts)
        prompts.extend(class_prompts)
        owner.extend([index] * len(class_prompts))
    return DescriptorClassifier(model.encode_texts(prompts), torch.tensor(owner), len(class_names))


def logits(image_features: torch.Tensor, classifier: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * features @ classifier``; ``scale`` is the model's own (``ClipModel.logit_scale()``)."""
    return scale * image_features @ classifier


def predict(model: ClipModel, images: torch.Tensor | Sequence[ImageInput], classifier: torch.Tensor,
            batch_size: int = 64) -> torch.Tensor:
    """Class probabilities ``[N, C]`` for images (tensor, PIL images or paths)."""
    features = model.encode_images(images, batch_size=batch_size)
    return logits(features, classifier, model.logit_scale()).softmax(dim=-1)


def classify_images(model: ClipModel, paths: Sequence[ImageInput], class_names: Sequence[str] | None = None,
                    templates: str | Sequence[str] | None = "photo",
                    descriptions: Mapping[str, Sequence[str]] | None = None, adapter: str | None = None,
                    batch_size: int = 64) -> tuple[list[str], torch.Tensor]:
    """Class names and probabilities ``[N, C]``: zero-shot from ``class_names`` (prompt ``templates``, or LLM
    ``descriptions`` per class), or from a learned ``adapter`` file (``clipsuite adapt train``; its own classes)."""
    if adapter is not None:
        from clipsuite.core.adapt.io import load_classifier

        learned = load_classifier(adapter, model)
        if learned.needs_pixels:  # MaPLe prompts live inside the image tower
            scores = torch.cat([learned.logits(model.preprocess_images(paths[i:i + batch_size]))
                                for i in range(0, len(paths), batch_size)])
        else:
            scores = learned.logits(model.encode_images(paths, batch_size=batch_size))
        return list(learned.class_names), scores.softmax(dim=-1)
    if class_names is None:
        raise InputError("give class names or an adapter")
    classifier = build_classifier(model, class_names, templates, descriptions)
    return list(class_names), predict(model, paths, classifier, batch_size)
