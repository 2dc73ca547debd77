"""One precision vocabulary for ``load_model``, the encoders and the ``Trainer``.

A name means the same thing everywhere:

- ``fp32``: float32 weights and float32 compute, on the CPU and on a GPU alike (no autocast).
- ``amp_bf16`` / ``amp_fp16``: float32 weights, compute under ``torch.autocast`` in that dtype
  (training with ``amp_fp16`` also scales the loss). ``amp`` is open_clip's name for ``amp_fp16``.
- ``bf16`` / ``fp16``: the weights themselves are cast (inference; half the memory). The Trainer
  refuses them for trainable weights and names the ``amp_*`` equivalent.
- ``auto``: what a CLI picks when the user says nothing: ``amp_bf16`` on a GPU that supports it,
  ``amp_fp16`` on an older GPU, ``fp32`` on the CPU.

The names are plain strings importable without torch, so a CLI can check ``--precision`` before it
pays for importing torch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "amp_bf16", "amp_fp16", "bf16", "fp16")
ALIASES = {"amp": "amp_fp16"}
MIXED = ("amp_bf16", "amp_fp16")
CAST = ("bf16", "fp16")


def check_precision(name: str) -> str:
    """The canonical name for ``name`` (aliases resolved); ``ValueError`` with the choices otherwise."""
    canonical = ALIASES.get(name, name)
    if canonical not in PRECISIONS:
        choices = ", ".join(PRECISIONS + tuple(ALIASES))
        raise ValueError(f"unknown precision '{name}' (choose from {choices})")
    return canonical


@dataclass(frozen=True)
class Precision:
    """A resolved precision on one device: the dtype of the weights and of autocast (None: off)."""

    name: str
    device_type: str
    weight_dtype: torch.dtype
    autocast_dtype: torch.dtype | None

    @property
    def needs_grad_scaler(self) -> bool:
        import torch

        return self.autocast_dtype == torch.float16 and self.device_type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.autocast_dtype)


def resolve_precision(name: str, device: torch.device | str, accelerate_hint: str | None = None) -> Precision:
    """Resolve ``name`` for ``device``. ``accelerate_hint`` is accelerate's ``mixed_precision``
    ("bf16"/"fp16"/"no"), honoured by ``auto`` so ``accelerate launch --mixed_precision`` works."""
    import torch

    canonical = check_precision(name)
    device_type = torch.device(device).type
    if canonical == "auto":
        if device_type != "cuda":
            canonical = "fp32"
        elif accelerate_hint in ("bf16", "fp16"):
            canonical = f"amp_{accelerate_hint}"
        else:
            canonical = "amp_bf16" if torch.cuda.is_bf16_supported() else "amp_fp16"
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}
    weight_dtype = half.get(canonical, torch.float32)
    autocast_dtype = half[canonical[4:]] if canonical in MIXED else None
    return Precision(canonical, device_type, weight_dtype, autocast_dtype)
