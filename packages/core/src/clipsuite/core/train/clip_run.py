"""Train a task that owns a ``ClipModel`` and save the trained model as the run's output.

What every CLIP fine-tuning command does after its setup (the umbrella's ``train``, remote sensing's
``train``): the core Trainer fits the task, the model is saved once (by the main process under
``accelerate launch``) into the run folder so that ``load_model(folder)`` reads it back, and a run that
fails in a folder it created leaves no folder behind.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from clipsuite.core.train.config import TrainConfig
from clipsuite.core.train.task import TrainTask
from clipsuite.core.train.trainer import Trainer, TrainResult

if TYPE_CHECKING:
    import torch

    from clipsuite.core.models import ClipModel


def fit_and_save_clip(task: TrainTask, cfg: TrainConfig, dataset: Any, clip: ClipModel,
                      options: Mapping[str, Any] | None = None,
                      rebuild: Callable[[TrainResult], ClipModel] | None = None,
                      ) -> tuple[ClipModel, TrainResult, bool]:
    """Fit ``task`` on ``dataset``, save ``clip`` to ``cfg.output_dir``; return the trained model, the
    Trainer's result and whether this is the main process. ``rebuild``: under FSDP the live model stays in
    shards, so the whole model is rebuilt from the run's weights (``None``: the model is used as it is)."""
    out = Path(cfg.output_dir)
    fresh_folder = not out.exists()
    try:
        trainer = Trainer(task, cfg, options)
        result = trainer.fit(dataset)
        if trainer.sharded and rebuild is not None:
            clip = rebuild(result)
        clip.model.eval()
        clip.device = cast("torch.Tensor", clip.model.logit_scale).device  # a Parameter
        accelerator = trainer.accelerator
        main = accelerator is None or accelerator.is_main_process
        if main:  # one writer under accelerate launch
            clip.save(out)
        if accelerator is not None:
            accelerator.wait_for_everyone()
    except BaseException:
        if fresh_folder and out.exists():  # no partial output from a run that never finished
            shutil.rmtree(out, ignore_errors=True)
        raise
    return clip, result, main
