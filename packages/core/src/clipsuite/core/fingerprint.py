"""A short fingerprint of a model's weights, so a learned file can tell its backbone from another.

Hashing every byte of a ViT-L would cost seconds; a fine-tuned or differently trained model differs in
nearly every tensor, so names, shapes and 256 evenly spaced values per tensor (as float32) tell them
apart in milliseconds. Weights cast to fp16/bf16 give other values, hence another fingerprint: callers
compare fingerprints of the same weight dtype only (see ``same_backbone``).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from clipsuite.core.errors import InputError

if TYPE_CHECKING:
    from clipsuite.core.models import ClipModel

SAMPLES_PER_TENSOR = 256


@torch.no_grad()
def weights_fingerprint(module: nn.Module) -> str:
    """16 hex digits over the state dict's names, shapes and sampled values (buffers included)."""
    digest = hashlib.blake2b(digest_size=8)
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)};".encode())
        if flat.numel() == 0 or not (flat.is_floating_point() or flat.dtype in (torch.int64, torch.int32)):
            continue
        count = min(flat.numel(), SAMPLES_PER_TENSOR)
        index = torch.linspace(0, flat.numel() - 1, count, device=flat.device).round().long()
        digest.update(flat[index].float().cpu().numpy().tobytes())
    return digest.hexdigest()


def check_same_backbone(path: object, recorded: dict[str, Any], clip: ClipModel, prefix: str = "model",
                        flag: str = "--model", made: str = "trained on") -> None:
    """Refuse, in one line naming both, a learned file (``path``) recorded for another backbone than ``clip``.

    ``recorded`` holds ``<prefix>``, ``<prefix>_hash``, ``<prefix>_dtype`` and ``<prefix>_image_size``
    as ``ClipModel.identity`` wrote them; a file without a hash (written before fingerprints) is not
    checked here. When the weight dtypes differ the hashes cannot agree, so the model names are
    compared instead. ``flag``: the command's option that chooses the model (``--clip`` ...); ``made``:
    how the file came from the model ("built with" for an index).
    """
    trained_hash = recorded.get(f"{prefix}_hash")
    if trained_hash is None:
        return
    trained_on = str(recorded.get(prefix, "?"))
    trained_size = recorded.get(f"{prefix}_image_size")
    if trained_size is not None and int(trained_size) != clip.image_size:
        # the same weights at another input size resample the position grid, so the hashes differ too:
        # say the size, which is what to change (files written before sizes were recorded skip this)
        head = f"{path}: {made} model '{trained_on}' at {trained_size} px, not at {clip.image_size} px"
        raise InputError(f"{head}; load it with load_model('{trained_on}', image_size={trained_size})",
                         cli=f"{head}; run with --image-size {trained_size}")
    if recorded.get(f"{prefix}_dtype") == clip.weights_dtype:
        same = trained_hash == clip.weights_hash
    else:
        same = trained_on == clip.name
    if not same:
        head = (f"{path}: {made} model '{trained_on}' (weights {trained_hash}), not on '{clip.name}' "
                f"(weights {clip.weights_hash})")
        raise InputError(f"{head}; load the model it was trained on: load_model('{trained_on}')",
                         cli=f"{head}; run with {flag} {trained_on}")
