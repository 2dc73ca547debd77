"""Turning a model spec string into where its config and weights come from.

Specs: a preset name (``biomedclip``), a built-in offline config (``tiny``), ``local-dir:PATH`` or a
folder holding ``open_clip_config.json``, a ``.safetensors`` file saved by clipsuite (config in its
metadata), ``hf-hub:org/repo``, or any open_clip model name with an optional pretrained tag or file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import open_clip

from clipsuite.core import hub
from clipsuite.core.checkpoints import read_config, read_json
from clipsuite.core.errors import ModelError
from clipsuite.core.presets import find_preset, preset_names

BUILTIN_CONFIG_DIR = Path(__file__).parent / "model_configs"
CONFIG_FILE = "open_clip_config.json"
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "model.safetensors",
                "open_clip_pytorch_model.bin", "pytorch_model.bin")

RANDOM = "none"  # pretrained="none": random weights, asked for explicitly
SourceKind = Literal["config", "open_clip", "transformers"]


@dataclass
class ModelSource:
    """A resolved spec: either a config we build ourselves, or a name open_clip resolves."""

    kind: SourceKind
    name: str
    config: dict[str, Any] | None = None  # {"model_cfg": ..., "preprocess_cfg": ...}
    config_dir: Path | None = None  # relative paths inside the config (HF towers) resolve here
    weights: Path | None = None
    pretrained: str | None = None

    @property
    def random_weights(self) -> bool:
        """Built from a config with no weight file, or an open_clip name without a pretrained tag: the
        model computes, but at chance; commands say so (``clipsuite.core.models.load_model``)."""
        if self.kind == "open_clip":
            return not self.name.startswith("hf-hub:") and self.pretrained in (None, "", RANDOM)
        return self.weights is None


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_CONFIG_DIR.glob("*.json"))


def _read_builtin(name: str) -> dict[str, Any]:
    return json.loads((BUILTIN_CONFIG_DIR / f"{name}.json").read_text())


def _from_folder(folder: Path, pretrained: str | None = None) -> ModelSource:
    from clipsuite.core.backends import transformers_source  # imports this module: not at the top

    if transformers_source.is_transformers_folder(folder):
        return transformers_source.folder_source(folder)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise ModelError(f"{folder}: no {CONFIG_FILE} in this folder (save one with ClipModel.save)")
    config = read_json(config_path)
    if "model_cfg" not in config:
        raise ModelError(f"{config_path}: missing the 'model_cfg' entry")
    weights = next((folder / w for w in WEIGHT_FILES if (folder / w).is_file()), None)
    if pretrained and pretrained != RANDOM:
        weights = Path(pretrained)
        if not weights.is_file():
            raise ModelError(f"{weights}: weight file not found")
    elif weights is None and pretrained != RANDOM:  # never a silently random model
        raise ModelError(f"{folder}: no weights beside {CONFIG_FILE} (expected one of {', '.join(WEIGHT_FILES)}); "
                         f"pass pretrained='/path/to/weights', or pretrained='{RANDOM}' for random weights",
                         cli=f"{folder}: no weights beside {CONFIG_FILE} (expected one of {', '.join(WEIGHT_FILES)}); "
                             f"add --pretrained FILE, or --pretrained {RANDOM} for random weights")
    return ModelSource("config", str(folder), config, folder, weights)


def _from_file(path: Path, pretrained_for: str | None) -> ModelSource:
    if path.suffix == ".safetensors":
        config = read_config(path)
        if config is not None:
            return ModelSource("config", str(path), config, path.parent, path)
    from clipsuite.core.backends import transformers_source

    if transformers_source.is_transformers_folder(path.parent):
        return transformers_source.folder_source(path.parent, weights=path)
    sibling = path.parent / CONFIG_FILE
    if sibling.is_file():
        return _from_folder(path.parent, str(path))
    raise ModelError(
        f"{path}: a bare weight file does not say its architecture; pass it as pretrained, "
        f"e.g. load_model('ViT-B-16', pretrained='{path}'), or put {CONFIG_FILE} beside it"
    )


def resolve_spec(spec: Any, pretrained: str | None = None) -> ModelSource:
    """``spec`` is a string, or a ``transformers.CLIPConfig`` / its dict (transformers backend)."""
    from clipsuite.core.backends import transformers_source

    if not isinstance(spec, str):
        return transformers_source.config_source(spec, pretrained)
    preset = find_preset(spec)
    if preset is not None and preset.spec != spec:
        return resolve_spec(preset.spec, pretrained if pretrained is not None else preset.pretrained)
    if spec.startswith("local-dir:"):
        folder = Path(spec[len("local-dir:"):]).expanduser()
        if not folder.is_dir():
            raise ModelError(f"{folder}: folder not found (from spec '{spec}')")
        return _from_folder(folder, pretrained)
    if spec.startswith("hf-hub:"):
        repo = spec[len("hf-hub:"):]
        python_fix, cli_fix = hub.fixes(spec)
        from clipsuite.core.weights_precheck import is_transformers_spec, transformers_repo_files

        # a transformers CLIPModel repo (PubMedCLIP) needs config.json + model weights, not open_clip's files
        files = transformers_repo_files(repo) if is_transformers_spec(spec) else hub.repo_files(repo)
        local = hub.check(files, f"'{spec}'", python_fix, cli_fix)  # no request when cached
        with hub.local_only(local):
            return transformers_source.hub_source(repo) or ModelSource("open_clip", spec)
    if spec in transformers_source.builtin_names():
        return transformers_source.builtin_source(spec, pretrained)
    if spec in builtin_names():
        weights = Path(pretrained) if pretrained and pretrained != RANDOM else None
        if weights is not None and not weights.is_file():
            raise ModelError(f"{weights}: weight file not found (built-in '{spec}' has no named weights)")
        return ModelSource("config", spec, _read_builtin(spec), BUILTIN_CONFIG_DIR, weights)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _from_folder(path, pretrained)
    if path.is_file():
        return _from_file(path, pretrained)
    if spec in open_clip.list_models():
        return ModelSource("open_clip", spec, pretrained=pretrained)
    if "/" in spec or spec.endswith((".safetensors", ".pt", ".bin", ".pth")):
        raise ModelError(f"{spec}: no such file or folder")
    known = ", ".join(preset_names()) + "; or any of open_clip's " + str(len(open_clip.list_models())) + " names"
    raise ModelError(f"unknown model '{spec}' (known: {known}; `clipsuite models` lists them)")


def resolve_relative_paths(config: dict[str, Any], base: Path | None) -> dict[str, Any]:
    """HF text towers saved with a folder store their paths as './...' relative to the config."""
    text_cfg = dict(config["model_cfg"].get("text_cfg", {}))
    for key in ("hf_model_name", "hf_tokenizer_name"):
        value = text_cfg.get(key)
        if base is not None and isinstance(value, str) and value.startswith("./"):
            text_cfg[key] = str((base / value[2:]).resolve())
    model_cfg = dict(config["model_cfg"], text_cfg=text_cfg)
    return dict(config, model_cfg=model_cfg)
