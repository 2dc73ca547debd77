"""Training: the ``Trainer`` (on accelerate) and its ``TrainConfig``; every domain trainer is this
Trainer plus a task (``TrainTask``: a module and its loss; see ``task.py``).

Importing this package imports neither torch nor accelerate: a CLI builds and checks a ``TrainConfig``
(``clipsuite.core.train.config``, torch-free) before anything heavy loads. The other names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipsuite.core.lazy_names import lazy_getattr
from clipsuite.core.train.config import TrainConfig

if TYPE_CHECKING:
    from clipsuite.core.train.clip_run import fit_and_save_clip
    from clipsuite.core.train.ema import EMA
    from clipsuite.core.train.logbook import read_metrics
    from clipsuite.core.train.schedule import build_scheduler, lr_factor
    from clipsuite.core.train.state import load_trainable
    from clipsuite.core.train.task import TrainTask
    from clipsuite.core.train.trainer import Trainer, TrainResult

# name -> the module that defines it, imported when the name is first asked for
_LAZY = {"EMA": ".ema", "TrainResult": ".trainer", "TrainTask": ".task", "Trainer": ".trainer",
         "build_scheduler": ".schedule", "fit_and_save_clip": ".clip_run", "load_trainable": ".state",
         "lr_factor": ".schedule", "read_metrics": ".logbook"}

__all__ = ["EMA", "TrainConfig", "TrainResult", "TrainTask", "Trainer", "build_scheduler", "fit_and_save_clip",
           "load_trainable", "lr_factor", "read_metrics"]


__getattr__ = lazy_getattr("clipsuite.core.train", _LAZY, globals())
