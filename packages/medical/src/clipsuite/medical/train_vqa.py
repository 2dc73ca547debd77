"""Medical VQA training on the core Trainer, and loading a trained run for evaluation and questions.

A run folder holds the Trainer's ``checkpoint.safetensors`` (the head, plus the image tower when it
was fine-tuned) and ``config.json``; the task config (model spec, VQA config, vocabularies) rides in
both, so ``load_vqa_run`` needs nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clipsuite.core.checkpoints import read_config
from clipsuite.core.errors import InputError
from clipsuite.core.model_specs import resolve_spec
from clipsuite.core.models import ClipModel, load_model
from clipsuite.core.run_folder import check_output_folder
from clipsuite.core.train import TrainConfig, Trainer, TrainResult, load_trainable
from clipsuite.core.train.state import WEIGHTS_FILE
from clipsuite.medical.data import AnswerVocab, QuestionTokenizer, VQASample, load_vqa
from clipsuite.medical.evaluate import predict_vqa, vqa_accuracy
from clipsuite.medical.methods.vqa import ClipVisualTokens, MedVQA, VQAConfig
from clipsuite.medical.vqa_data import VQADataset, grey_tensor, prepare_images
from clipsuite.medical.vqa_run import VQASettings, VQATrainRun

__all__ = ["VQAModel", "VQARun", "VQASettings", "VQATask", "load_vqa_run", "train_vqa", "train_vqa_run"]

BACKBONE_DIR = "backbone"


class VQAModel(nn.Module):
    """The head plus (when fine-tuned) the CLIP image tower; batches carry cached tokens or pixels."""

    def __init__(self, vqa: MedVQA, visual: ClipVisualTokens) -> None:
        super().__init__()
        self.vqa = vqa
        self.visual = visual

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        visual = batch["visual"] if "visual" in batch else self.visual(batch["pixels"])
        return self.vqa(visual.float(), batch["tokens"], batch.get("grey"))


class VQATask:
    """A ``TrainTask`` for the core Trainer: BCE over answers (+ QCR's type loss, + the autoencoder's). The
    image tower it reads from is part of ``module`` (trained or frozen), so nothing else needs placing."""

    def __init__(self, model: VQAModel, eval_data: VQADataset | None, config: dict[str, Any]) -> None:
        self.module = model
        self.eval_data = eval_data
        self._config = config

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.module.vqa.loss(self.module(batch), batch["answer"], batch["is_closed"].bool())

    def evaluate(self) -> dict[str, float]:
        if self.eval_data is None:
            return {}
        answers, _, _ = predict_vqa(self.module, self.eval_data)
        result = vqa_accuracy(answers, self.eval_data.answer_ids.tolist(), self.eval_data.is_closed.tolist())
        return {k: v for k, v in result.items() if not k.startswith("n_")}

    def config(self) -> dict[str, Any]:
        return self._config


def _build(clip: ClipModel, settings: VQASettings, answers: AnswerVocab, questions: QuestionTokenizer,
           ) -> VQAModel:
    # settings.head: the CLI's string (qcr | mevf, checked there)
    cfg = VQAConfig(head=settings.head, visual_dim=clip.embed_dim, n_answers=len(answers),  # type: ignore[arg-type]
                    closed_answers=tuple(i for i, c in enumerate(answers.closed) if c),
                    open_answers=tuple(i for i, o in enumerate(answers.opened) if o),
                    vocab_size=len(questions), max_tokens=questions.max_tokens, word_dim=settings.word_dim,
                    hidden=settings.hidden, glimpses=settings.glimpses, use_ae=settings.use_ae,
                    ae_size=settings.ae_size, ae_channels=settings.ae_channels, dropout=settings.dropout)
    if cfg.head == "qcr" and (not cfg.closed_answers or not cfg.open_answers):
        raise InputError("QCR needs training questions of both types (OPEN and CLOSED); use --head mevf")
    visual = ClipVisualTokens(clip, settings.patch_tokens, settings.pool_grid)
    visual.requires_grad_(settings.finetune_visual)
    return VQAModel(MedVQA(cfg), visual)


@dataclass
class VQARun:
    network: VQAModel  # the VQA model (frozen or fine-tuned visual part + head)
    clip: ClipModel
    answers: AnswerVocab
    questions: QuestionTokenizer
    settings: VQASettings
    metrics: dict[str, float] = field(default_factory=dict)
    train: TrainResult | None = None  # what the core Trainer did, when this run was just trained (train_vqa)

    def dataset(self, samples: Sequence[VQASample], strict: bool = False) -> VQADataset:
        frozen = None if self.settings.finetune_visual else self.network.visual
        images = prepare_images([s.image for s in samples], self.clip, self.settings.ae_size, frozen)
        return VQADataset(samples, images, self.answers, self.questions, strict=strict)

    def evaluate(self, samples: Sequence[VQASample]) -> dict[str, float]:
        data = self.dataset(samples)
        answers, _, _ = predict_vqa(self.network, data)
        return vqa_accuracy(answers, data.answer_ids.tolist(), data.is_closed.tolist())

    @torch.no_grad()
    def ask(self, image: str | os.PathLike[str], question: str) -> dict[str, Any]:
        """One answer; a question longer than the model reads is refused, not cut."""
        from clipsuite.core.images import load_image

        tokens = torch.tensor([self.questions.encode(question, strict=True)])
        picture = load_image(image)
        device = next(self.network.parameters()).device
        batch = {"pixels": self.clip.preprocess(picture).unsqueeze(0).to(device), "tokens": tokens.to(device),
                 "grey": grey_tensor(picture, self.settings.ae_size).unsqueeze(0).to(device)}
        self.network.eval()
        out = self.network(batch)
        probs = self.network.vqa.answer_scores(out).sigmoid()[0]
        best = int(probs.argmax())
        kind = "closed" if ("type_logits" not in out or int(out["type_logits"].argmax()) == 1) else "open"
        if self.settings.head == "mevf":
            kind = "closed" if self.answers.closed[best] and not self.answers.opened[best] else "open"
        return {"answer": self.answers.answers[best], "probability": float(probs[best]), "question_type": kind}


def train_vqa(train: Sequence[VQASample], output_dir: str | os.PathLike[str], model: str = "pubmedclip",
              pretrained: str | None = None, settings: VQASettings | None = None,
              train_config: TrainConfig | None = None, eval_samples: Sequence[VQASample] | None = None,
              device: str | None = None, options: Mapping[str, Any] | None = None,
              overwrite: bool = False) -> VQARun:
    """Build vocabularies from ``train``, train the head on the core Trainer, evaluate on ``eval_samples``.
    ``options``: how the calling command was started, stored with the run for ``--resume``. An earlier run
    in ``output_dir`` is continued (``train_config.resume``) or replaced (``overwrite``), never silently."""
    cfg = train_config or TrainConfig(epochs=20, batch_size=32, lr=1e-3, optimizer="adam")
    check_output_folder(output_dir, cfg.resume, overwrite)
    settings = settings or VQASettings()
    clip = load_model(model, pretrained=pretrained, device=device or "cpu")
    answers = AnswerVocab.build(train)
    questions = QuestionTokenizer.build([s.question for s in train], settings.max_tokens)
    vqa_model = _build(clip, settings, answers, questions)
    run = VQARun(vqa_model, clip, answers, questions, settings)
    model_ref = model
    source = resolve_spec(model, pretrained)
    if source.kind == "config" and source.weights is None:
        # a randomly initialised built-in (tiny): keep its frozen weights with the run, or they are lost
        clip.save(Path(output_dir) / BACKBONE_DIR)
        model_ref, pretrained = f"./{BACKBONE_DIR}", None
    config = {"kind": "medical-vqa", "model": model_ref, "pretrained": pretrained, "settings": asdict(settings),
              "vqa": vqa_model.vqa.cfg.to_dict(), "answers": answers.to_dict(), "questions": questions.to_dict()}
    cfg.output_dir = Path(output_dir)
    eval_data = run.dataset(eval_samples) if eval_samples else None
    result = Trainer(VQATask(vqa_model, eval_data, config), cfg, options).fit(run.dataset(train))
    vqa_model.to(clip.device)
    run.metrics = {k[len("eval/"):]: v for k, v in result.metrics.items() if k.startswith("eval/")}
    run.train = result
    return run


def train_vqa_run(run: VQATrainRun, output_dir: str | os.PathLike[str], resume: bool = False,
                  overwrite: bool = False, device: str | None = None) -> VQARun:
    """``clipsuite-medical vqa train``: the run's data (train and test splits) and settings, stored with
    the run as its config (``run.to_options()``) so ``--resume`` continues it."""
    data = str(run.data)  # VQATrainRun refuses a run without data
    return train_vqa(load_vqa(data, "train"), output_dir, run.model, run.pretrained, run.settings(),
                     run.train_config(Path(output_dir), resume=resume), load_vqa(data, "test"), device,
                     run.to_options(), overwrite=overwrite)


def load_vqa_run(run_dir: str | os.PathLike[str], device: str | None = None) -> VQARun:
    run_dir = Path(run_dir)
    weights = run_dir / WEIGHTS_FILE if run_dir.is_dir() else run_dir
    if not weights.is_file():
        raise InputError(f"{weights}: no trained VQA checkpoint here (run `clipsuite-medical vqa train` first)")
    config = read_config(weights) or {}
    if config.get("kind") != "medical-vqa":
        raise InputError(f"{weights}: not a medical VQA checkpoint")
    settings = VQASettings(**config["settings"])
    spec = str(config["model"])
    if spec.startswith("./"):
        spec = str(weights.parent / spec[2:])
    clip = load_model(spec, pretrained=config.get("pretrained"), device=device or "cpu")
    answers = AnswerVocab.from_dict(config["answers"])
    questions = QuestionTokenizer.from_dict(config["questions"])
    model = VQAModel(MedVQA(VQAConfig.from_dict(config["vqa"])), ClipVisualTokens(
        clip, settings.patch_tokens, settings.pool_grid))
    model.visual.requires_grad_(settings.finetune_visual)
    load_trainable(model, weights)
    return VQARun(model.to(clip.device).eval(), clip, answers, questions, settings)
