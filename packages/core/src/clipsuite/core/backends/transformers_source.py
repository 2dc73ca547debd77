"""Which specs are CLIP as transformers holds it, and where their config, weights and files are.

- a folder with ``config.json`` and no ``open_clip_config.json`` (``CLIPModel.save_pretrained`` plus
  the tokenizer's and image processor's files; what ``ClipModel.save`` writes for this backend);
- ``hf-hub:org/repo`` whose repo holds such a ``config.json`` (``model_type`` "clip") and no
  ``open_clip_config.json``: read from the local Hugging Face cache; downloaded only when online;
- a ``transformers.CLIPConfig`` or its dict (random init, seeded; the built-in tiny tokenizer);
- built-in folders under ``model_configs`` (``tiny-transformers``): config + tokenizer, no weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clipsuite.core.checkpoints import read_json
from clipsuite.core.errors import InputError, ModelError
from clipsuite.core.model_specs import BUILTIN_CONFIG_DIR, CONFIG_FILE, ModelSource

HF_CONFIG = "config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TINY_TOKENIZER_DIR = BUILTIN_CONFIG_DIR / "tiny-transformers"
# what a transformers CLIP repo needs on disk (no TensorFlow / Flax / ONNX copies)
HUB_PATTERNS = ["*.json", "*.txt", "model.safetensors*", "pytorch_model.bin*", "model-*.safetensors",
                "pytorch_model-*.bin"]


def is_transformers_folder(folder: Path) -> bool:
    """A folder transformers wrote: ``config.json`` and no open_clip config beside it."""
    return (folder / HF_CONFIG).is_file() and not (folder / CONFIG_FILE).is_file()


def _model_type(folder: Path) -> str | None:
    try:
        return json.loads((folder / HF_CONFIG).read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def builtin_names() -> list[str]:
    """Built-in transformers CLIP folders (config + tokenizer, random init)."""
    return sorted(p.name for p in BUILTIN_CONFIG_DIR.iterdir()
                  if p.is_dir() and (p / HF_CONFIG).is_file() and _model_type(p) == "clip")


def clip_config_dict(config: Any, where: str) -> dict[str, Any]:
    """A CLIPConfig (or its dict) as a plain dict with ``model_type`` "clip"; one clear error otherwise."""
    data = config.to_dict() if hasattr(config, "to_dict") else config
    if not isinstance(data, dict):
        raise ModelError(f"{where}: expected a transformers CLIPConfig or its dict, got {type(config).__name__}")
    model_type = data.get("model_type", "clip" if {"text_config", "vision_config"} <= set(data) else None)
    if model_type != "clip":
        raise ModelError(f"{where}: describes a '{model_type}' model; the transformers backend loads CLIP "
                         "(model_type 'clip': CLIPModel with a text and a vision tower)")
    return dict(data, model_type="clip")


def folder_source(folder: Path, weights: Path | None = None, name: str | None = None,
                  require_weights: bool = True) -> ModelSource:
    """A transformers CLIP folder. ``weights`` overrides the folder's own weight file."""
    try:
        raw = read_json(folder / HF_CONFIG)
    except InputError as error:  # malformed JSON: a model error here, naming the file
        raise ModelError(str(error)) from None
    config = clip_config_dict(raw, str(folder / HF_CONFIG))
    if weights is None:
        weights = next((folder / w for w in WEIGHT_FILES if (folder / w).is_file()), None)
    if weights is None and require_weights:
        raise ModelError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES[::2])}) beside config.json")
    return ModelSource("transformers", name or str(folder), config, folder, weights)


def builtin_source(name: str, weights: str | None) -> ModelSource:
    path = Path(weights) if weights else None
    if path is not None and not path.is_file():
        raise ModelError(f"{path}: weight file not found (built-in '{name}' has no named weights)")
    return folder_source(BUILTIN_CONFIG_DIR / name, path, name=name, require_weights=False)


def config_source(config: Any, weights: str | None = None) -> ModelSource:
    """A CLIPConfig or dict: random init (seeded) or ``weights``; tokenizer and preprocessing come from
    the built-in tiny folder and the config's image size, so the config's vocabulary must cover it."""
    data = clip_config_dict(config, "config")
    path = Path(weights) if weights else None
    if path is not None and not path.is_file():
        raise ModelError(f"{path}: weight file not found")
    return ModelSource("transformers", "transformers-config", data, None, path)


def _offline() -> bool:
    """huggingface_hub reads HF_HUB_OFFLINE once at import; a later setting of the variable counts too."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _hub_file(repo_id: str, filename: str) -> Path | None:
    """``filename`` of ``repo_id`` from the local cache, or downloaded when online; None if absent."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError

    cached = try_to_load_from_cache(repo_id, filename)
    if isinstance(cached, str):
        return Path(cached)
    if _offline() or cached is not None:  # offline, or cached as known-missing
        return None
    try:
        return Path(hf_hub_download(repo_id, filename))
    except EntryNotFoundError:
        return None


def hub_source(repo_id: str) -> ModelSource | None:
    """A transformers CLIP repo as a folder source, or None when the repo is open_clip's (or cannot be
    told offline: then open_clip's loader gives its error with the hint what to pass)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        if _hub_file(repo_id, CONFIG_FILE) is not None:
            return None
        config = _hub_file(repo_id, HF_CONFIG)
    except (HfHubHTTPError, OSError, ValueError):  # no network, no such repo, gated: open_clip reports it
        return None
    if config is None or _model_type(config.parent) != "clip":
        return None
    try:
        folder = snapshot_download(repo_id, allow_patterns=HUB_PATTERNS,
                                   local_files_only=_offline())
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelError(f"hf-hub:{repo_id}: the transformers CLIP files are not all here ({first[:160]}); "
                         "run once with network, or pass the downloaded folder") from None
    return folder_source(Path(folder), name=f"hf-hub:{repo_id}")
