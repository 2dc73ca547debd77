"""Training: the ``Trainer`` (on accelerate) and its ``TrainConfig``; every domain trainer is this
Trainer plus a task (``TrainTask``: a module and its loss; see ``task.py``)."""

from clipsuite.core.train.clip_run import fit_and_save_clip
from clipsuite.core.train.config import TrainConfig
from clipsuite.core.train.ema import EMA
from clipsuite.core.train.logbook import read_metrics
from clipsuite.core.train.schedule import build_scheduler, lr_factor
from clipsuite.core.train.state import load_trainable
from clipsuite.core.train.task import TrainTask
from clipsuite.core.train.trainer import Trainer, TrainResult

__all__ = ["EMA", "TrainConfig", "TrainResult", "TrainTask", "Trainer", "build_scheduler", "fit_and_save_clip",
           "load_trainable", "lr_factor", "read_metrics"]
