"""Fitted decoders on disk, whichever kind: a folder with ``decoder.json`` (its ``kind``, the CLIP
model spec, the preprocessing, the voxel count) and the kind's weights.

- ``ridge-decoder``: ``image.safetensors`` and ``text.safetensors`` (one ridge per CLIP space);
- ``mlp-decoder``: ``mlp.safetensors`` (a ``BrainMLP``, its ``MLPConfig`` in the metadata).

Both answer ``predict(responses) -> {space: (n, d) float32}``; ``read_decoder`` picks the loader by
the recorded kind (a table, so another kind is one entry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from clipsuite.brain.methods.mlp import BrainMLP, MLPConfig
from clipsuite.brain.ridge import RidgeModel
from clipsuite.core.checkpoints import load_tensors, read_config, read_json, save_tensors
from clipsuite.core.errors import InputError

META_FILE = "decoder.json"
RIDGE_SPACES = ("image", "text")
MLP_FILE = "mlp.safetensors"


class Decoder(Protocol):
    def predict(self, responses: np.ndarray) -> dict[str, np.ndarray]: ...


@dataclass
class RidgeDecoder:
    models: dict[str, RidgeModel]

    def predict(self, responses: np.ndarray) -> dict[str, np.ndarray]:
        return {s: m.predict(responses).float().cpu().numpy() for s, m in self.models.items()}

    def save(self, folder: Path) -> None:
        for space, model in self.models.items():
            model.save(folder / f"{space}.safetensors", {"space": space})

    @classmethod
    def load(cls, folder: Path, device: str | None = None) -> RidgeDecoder:
        return cls({s: RidgeModel.load(folder / f"{s}.safetensors")[0] for s in RIDGE_SPACES})


@dataclass
class MLPDecoder:
    model: BrainMLP

    def predict(self, responses: np.ndarray) -> dict[str, np.ndarray]:
        from clipsuite.brain.train import predict

        return predict(self.model, responses)

    def save(self, folder: Path) -> None:
        save_tensors(folder / MLP_FILE, self.model.state_dict(), {"kind": "brain-mlp", **self.model.config.to_dict()})

    @classmethod
    def load(cls, folder: Path, device: str | None = None) -> MLPDecoder:
        path = folder / MLP_FILE
        tensors = load_tensors(path)
        meta = read_config(path) or {}
        if meta.pop("kind", None) != "brain-mlp":
            raise InputError(f"{path}: not a clipsuite brain MLP decoder")
        model = BrainMLP(MLPConfig.from_dict(meta))
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if missing or unexpected:
            raise InputError(f"{path}: weights do not match the stored config (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")
        return cls(model.to(device or "cpu").eval())


LOADERS: dict[str, Callable[[Path, str | None], Decoder]] = {
    "ridge-decoder": RidgeDecoder.load,
    "mlp-decoder": MLPDecoder.load,
}


def read_decoder(folder: str | Path, device: str | None = None) -> tuple[Decoder, dict[str, Any]]:
    folder = Path(folder)
    meta = read_json(folder / META_FILE)
    kind = meta.get("kind") if isinstance(meta, dict) else None
    loader = LOADERS.get(str(kind))
    if loader is None:
        raise InputError(f"{folder / META_FILE}: not a clipsuite brain decoder (kind {kind!r}; "
                         f"known: {', '.join(LOADERS)})")
    return loader(folder, device), meta
