"""The crop areas of RS-M-CLIP's self-distillation, torch-free: the method's settings
(``clipsuite.remote.train_run.RemoteTrainConfig``) default to them and are checked before torch is imported."""

from __future__ import annotations

GLOBAL_SCALE = (0.4, 1.0)  # RS-M-CLIP / DINO global crops: 40-100 % of the image area
LOCAL_SCALE = (0.05, 0.4)  # local crops: 5-40 %
