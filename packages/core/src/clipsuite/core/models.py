"""``load_model`` and ``ClipModel``: one object holding an open_clip model, tokenizer and transforms.

Built-in configs and saved folders are built here from their JSON (no hub, no network);
open_clip names and ``hf-hub:`` ids go through open_clip, with offline failures turned into one
clear ``WeightsUnavailableError``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import open_clip
import torch
from huggingface_hub.errors import EntryNotFoundError
from open_clip.model import CLIP, CustomTextCLIP, get_cast_dtype, resize_pos_embed
from open_clip.tokenizer import HFTokenizer, SimpleTokenizer
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from PIL import Image

from clipsuite.core import hub
from clipsuite.core.checkpoints import atomic_write_json, load_state_exactly, load_tensors, save_tensors
from clipsuite.core.errors import ModelError, first_line
from clipsuite.core.images import load_image
from clipsuite.core.model_specs import CONFIG_FILE, RANDOM, ModelSource, resolve_relative_paths, resolve_spec
from clipsuite.core.notices import note_random_weights
from clipsuite.core.precision import resolve_precision
from clipsuite.core.towers import vision_tower
from clipsuite.core.towers.bands import adapt_conv

MAX_LOGIT_SCALE = 100.0  # open_clip clamps the learned temperature's exp at 100 (log 100 in training)
ImageInput = Image.Image | str | os.PathLike[str]


class ClipEncoders(Protocol):
    """The encoders of open_clip's ``CLIP`` surface that ``ClipModel`` calls on its ``model`` (an
    ``nn.Module``: open_clip's ``CLIP`` / ``CustomTextCLIP``, or ``TransformersCLIP``)."""

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor: ...

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor: ...


class ClipModel:
    """An open_clip model with its tokenizer and preprocessing, and batched no-grad encoders.

    ``encode_images`` / ``encode_texts`` return L2-normalised float32 tensors on the CPU (what an
    index or a classifier consumes). ``dense_features`` stays on the model's device, for methods
    that build on patch tokens.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, config: dict[str, Any], name: str,
                 device: torch.device, precision: str) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.name = name
        self.device = device
        # the resolved name ("auto" becomes amp_* on a GPU, fp32 on the CPU); see clipsuite.core.precision
        self.precision = resolve_precision(precision, device).name
        preprocess_cfg = PreprocessCfg(**merge_preprocess_dict(PreprocessCfg(), config.get("preprocess_cfg", {})))
        preprocess_cfg.size = getattr(model.visual, "image_size", preprocess_cfg.size)
        self.preprocess_cfg = preprocess_cfg
        self.preprocess = image_transform_v2(preprocess_cfg, is_train=False)
        self.preprocess_train = image_transform_v2(preprocess_cfg, is_train=True)
        self._weights_hash: str | None = None
        self.random_weights = False  # set by load_model: a config without weights (tiny ...) computes at chance

    # ---- shape facts -------------------------------------------------------------------------
    @property
    def model_cfg(self) -> dict[str, Any]:
        return self.config["model_cfg"]

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    @property
    def image_size(self) -> int:
        size = self.preprocess_cfg.size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @property
    def context_length(self) -> int:
        return int(getattr(self.tokenizer, "context_length", self.model_cfg["text_cfg"].get("context_length", 77)))

    @property
    def has_hf_text(self) -> bool:
        return "hf_model_name" in self.model_cfg.get("text_cfg", {})

    @property
    def patch_grid(self) -> tuple[int, int]:
        visual = self.model.visual
        grid = getattr(visual, "grid_size", None)
        if grid is None:
            raise ModelError(f"{self.name}: the image tower has no patch grid (not a ViT)")
        return int(grid[0]), int(grid[1])

    @property
    def image_encoder(self) -> torch.nn.Module:
        """The module that owns the image tower's weights and maps pixels to pooled image features
        (to freeze, fine-tune or register it in a bigger model). For steps, use ``towers.vision_tower``."""
        return cast(torch.nn.Module, self.model.visual)

    # ---- the training surface ------------------------------------------------------------------
    @property
    def network(self) -> torch.nn.Module:
        """The whole CLIP module, for a training task to wrap, optimise and checkpoint: it offers
        ``encode_image(pixels, normalize)``, ``encode_text(tokens, normalize)`` and ``logit_scale`` (open_clip's
        ``CLIP`` surface, which the transformers backend mirrors). Steps inside a tower go through
        ``clipsuite.core.towers``; nothing outside the core reaches for ``.model``."""
        return self.model

    def freeze(self) -> ClipModel:
        """Stop every weight of the model from training (a frozen backbone under learned prompts/adapters)."""
        self.model.requires_grad_(False)
        return self

    def train_temperature(self, trainable: bool) -> None:
        """Whether the learnt logit scale trains with the rest (CLIP learns it; a fixed one is kept)."""
        scale = getattr(self.model, "logit_scale", None)
        if isinstance(scale, torch.nn.Parameter):
            scale.requires_grad_(trainable)

    @property
    def weights_hash(self) -> str:
        """A fingerprint of the weights (``clipsuite.core.fingerprint``), computed once per load; learned
        prompt and adapter files record it to refuse another backbone."""
        if self._weights_hash is None:
            from clipsuite.core.fingerprint import weights_fingerprint

            self._weights_hash = weights_fingerprint(self.model)
        return self._weights_hash

    @property
    def weights_dtype(self) -> str:
        """The dtype the weights are held in (their fingerprint depends on it)."""
        return str(next(self.model.parameters()).dtype).replace("torch.", "")

    def identity(self) -> dict[str, str]:
        """What a learned file records about the model it was trained on."""
        return {"model": self.name, "model_hash": self.weights_hash, "model_dtype": self.weights_dtype,
                "model_image_size": str(self.image_size)}

    # ---- inputs ------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts)).to(self.device)

    def preprocess_images(self, images: Sequence[ImageInput]) -> torch.Tensor:
        decoded = [img if isinstance(img, Image.Image) else load_image(img) for img in images]
        return torch.stack([self.preprocess(img.convert("RGB")) for img in decoded])

    def to(self, device: str | torch.device) -> ClipModel:
        """Move the model to ``device``; inputs follow it (the Trainer places frozen models this way)."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """``torch.autocast`` for amp_bf16 / amp_fp16; a no-op for fp32 (on a GPU too) and cast weights."""
        return resolve_precision(self.precision, self.device).autocast()

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype pixels are cast to: the weights' dtype (float32 unless loaded as fp16/bf16)."""
        return resolve_precision(self.precision, self.device).weight_dtype

    def logit_scale(self) -> float:
        """The model's own learned temperature, as open_clip uses it: ``exp(logit_scale)``, at most 100
        (100 for a model that has none, OpenAI CLIP's value). The one scale for zero-shot and adapters."""
        scale = getattr(self.model, "logit_scale", None)
        if not isinstance(scale, torch.Tensor):
            return MAX_LOGIT_SCALE
        return float(scale.detach().float().exp().clamp(max=MAX_LOGIT_SCALE).item())

    # ---- encoders ----------------------------------------------------------------------------
    def _batches(self, items: Sequence[Any], batch_size: int) -> Iterator[Sequence[Any]]:
        for start in range(0, len(items), batch_size):
            yield items[start:start + batch_size]

    @torch.no_grad()
    def encode_image_tensor(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Encode preprocessed pixels ``[B, 3, H, W]``; result stays on the model's device, float32."""
        with self.autocast():
            features = cast(ClipEncoders, self.model).encode_image(pixels.to(self.device, self.input_dtype))
        features = features.float()
        return torch.nn.functional.normalize(features, dim=-1) if normalize else features

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor | Sequence[ImageInput], batch_size: int = 64,
                      normalize: bool = True) -> torch.Tensor:
        """Images (preprocessed tensor, PIL images or paths) -> ``[N, embed_dim]`` float32 on the CPU."""
        if isinstance(images, torch.Tensor):
            chunks = [self.encode_image_tensor(images[i:i + batch_size], normalize).cpu()
                      for i in range(0, len(images), batch_size)]
        else:
            chunks = [self.encode_image_tensor(self.preprocess_images(batch), normalize).cpu()
                      for batch in self._batches(list(images), batch_size)]
        return torch.cat(chunks) if chunks else torch.empty(0, self.embed_dim)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256, normalize: bool = True) -> torch.Tensor:
        """Texts -> ``[N, embed_dim]`` float32 on the CPU."""
        chunks = []
        for batch in self._batches(list(texts), batch_size):
            with self.autocast():
                features = cast(ClipEncoders, self.model).encode_text(self.tokenize(batch)).float()
            if normalize:
                features = torch.nn.functional.normalize(features, dim=-1)
            chunks.append(features.cpu())
        return torch.cat(chunks) if chunks else torch.empty(0, self.embed_dim)

    def dense_features(self, pixels: torch.Tensor, layers: Sequence[int], project: bool = True,
                       ) -> list[torch.Tensor]:
        """Patch tokens ``[B, N_patches, D]`` after each block in ``layers`` (0-based; negatives count
        from the end). With ``project`` they pass the final norm and the image projection, landing in
        the joint image-text space. Other image sizes than the model's use resampled position
        embeddings. Gradients flow when called under ``torch.enable_grad``."""
        tower = vision_tower(self)
        with self.autocast():
            tokens = tower.patch_tokens(pixels.to(self.device), layers, project=project)
        return [t.float() for t in tokens]

    def adapt_input_bands(self, n_bands: int, rule: str = "repeat") -> None:
        """Make the image tower take ``n_bands`` input bands (multispectral), its patch embedding built
        from the RGB filters by ``rule`` (``repeat`` or ``average``, see ``towers.bands``). The band
        count is recorded in the config, so ``save`` + ``load_model`` gives the same model back."""
        vision_tower(self).adapt_input_bands(n_bands, rule)
        vision_cfg = self.config["model_cfg"]["vision_cfg"]
        vision_cfg["in_chans"], vision_cfg["band_rule"] = int(n_bands), rule

    # ---- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``open_clip_config.json`` + ``open_clip_model.safetensors`` (plus the HF text tower's
        config and tokenizer files), readable by ``load_model(path)`` and ``local-dir:path``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        config = copy.deepcopy(self.config)
        if self.has_hf_text:
            self._save_hf_text_files(folder / "text_tower")
            config["model_cfg"]["text_cfg"]["hf_model_name"] = "./text_tower"
            config["model_cfg"]["text_cfg"]["hf_tokenizer_name"] = "./text_tower"
        state = {k: v for k, v in self.model.state_dict().items()}
        save_tensors(folder / "open_clip_model.safetensors", state, config)
        atomic_write_json(folder / CONFIG_FILE, config)
        return folder

    def _save_hf_text_files(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        text: Any = self.model.text  # open_clip's HFTextEncoder (untyped), holding a transformers config
        text.config.save_pretrained(folder)
        source = self.model_cfg["text_cfg"].get("hf_tokenizer_name", "")
        if Path(source).is_dir() and Path(source).resolve() != folder.resolve():
            for item in Path(source).iterdir():
                if item.is_file() and item.name != "config.json":
                    shutil.copy2(item, folder / item.name)
        else:
            self.tokenizer.tokenizer.save_pretrained(folder)


# ---- construction ---------------------------------------------------------------------------------
def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _load_state(model: torch.nn.Module, weights: Path, name: str, resize_positions: bool = False) -> None:
    state = load_tensors(weights) if weights.suffix == ".safetensors" else open_clip.load_state_dict(
        str(weights), weights_only=True)
    if resize_positions:  # another image size than the weights': resample the position grid, as open_clip does
        resize_pos_embed(state, model)
    load_state_exactly(model, state, weights, f"the '{name}' architecture")


def _build_from_config(source: ModelSource, precision: str, quick_gelu: bool,
                       image_size: int | None) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    assert source.config is not None  # a "config" source always carries its config (model_specs)
    config = resolve_relative_paths(copy.deepcopy(source.config), source.config_dir)
    cfg = copy.deepcopy(config["model_cfg"])
    cfg.pop("description", None)
    if quick_gelu:
        cfg["quick_gelu"] = True
    if image_size is not None:
        cfg["vision_cfg"]["image_size"] = image_size
    # clipsuite's own vision keys (not open_clip's): the band count of an adapted patch embedding
    in_chans = int(cfg["vision_cfg"].pop("in_chans", 3))
    band_rule = str(cfg["vision_cfg"].pop("band_rule", "repeat"))
    text_cfg = cfg["text_cfg"]
    is_hf = "hf_model_name" in text_cfg
    if is_hf:
        text_cfg["hf_model_pretrained"] = False  # weights come from our checkpoint, never a hub
    model_class = CustomTextCLIP if (cfg.pop("custom_text", False) or is_hf) else CLIP
    # A built-in config without weights is the same random model on every load (seed 0, without
    # touching the caller's RNG), so an adapter trained on `tiny` fits `tiny` loaded again. The model
    # is built on the CPU, so only the CPU generator is seeded (torch.manual_seed would also reset
    # every CUDA generator, which fork_rng(devices=[]) does not restore).
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0)
        model = model_class(**cfg, cast_dtype=get_cast_dtype(precision))
        if in_chans != 3:
            adapt_conv(model.visual.conv1, in_chans, band_rule)
    if source.weights is not None:
        _load_state(model, source.weights, source.name, resize_positions=image_size is not None)
    context_length = int(text_cfg.get("context_length", 77))
    if is_hf:
        tokenizer = HFTokenizer(text_cfg.get("hf_tokenizer_name", text_cfg["hf_model_name"]),
                                context_length=context_length)
    else:
        tokenizer = SimpleTokenizer(context_length=context_length)
    # keep the saved config portable: store the unresolved (relative) HF paths
    saved = copy.deepcopy(source.config)
    saved["model_cfg"] = {k: v for k, v in saved["model_cfg"].items() if k != "description"}
    if quick_gelu:
        saved["model_cfg"]["quick_gelu"] = True
    if image_size is not None:
        saved["model_cfg"]["vision_cfg"]["image_size"] = image_size
    return model, tokenizer, saved


# what open_clip and the hub raise for a missing/unknown model or unreachable weights (hub errors are
# OSErrors except the EntryNotFoundError base)
_LOAD_ERRORS = (RuntimeError, OSError, ValueError, KeyError, EntryNotFoundError)


def _hub_needs(name: str, pretrained: str | None) -> tuple[list[hub.HubFile], str | None]:
    """The hub files open_clip will fetch for ``name`` + ``pretrained``, or a plain URL it downloads."""
    if name.startswith("hf-hub:"):
        return hub.repo_files(name[len("hf-hub:"):]), None
    from clipsuite.core.weights_precheck import needs_from_cfg  # the same rule the torch-free check applies

    return needs_from_cfg(open_clip.get_pretrained_cfg(name, pretrained) if pretrained else {})


def _fetch_file_ref(ref: str, what: str) -> str:
    """``hf-hub:org/repo/file.pt`` (a plain open_clip state dict in a hub repo) -> its local path."""
    from huggingface_hub import hf_hub_download

    parsed = hub.parse_file_ref(ref)
    assert parsed is not None  # callers pass file refs only
    repo, filename = parsed
    python_fix, cli_fix = hub.fixes(what)
    local = hub.check([hub.HubFile(repo, (filename,))], f"weights {ref} for '{what}'", python_fix, cli_fix)
    try:
        with hub.local_only(local):
            return hf_hub_download(repo, filename)
    except _LOAD_ERRORS as error:
        raise hub.unavailable(f"weights {ref} for '{what}'", python_fix, cli_fix,
                              f"the download failed ({first_line(error)})") from None


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """open_clip logs a failed download on the root logger before raising; the error we raise says it once."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        root.setLevel(level)


def _build_from_open_clip(source: ModelSource, precision: str, quick_gelu: bool,
                          image_size: int | None) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    name, pretrained = source.name, source.pretrained
    asked = f"'{name}'" + (f" with pretrained '{pretrained}'" if pretrained else "")
    python_fix, cli_fix = hub.fixes(name)
    if pretrained is None and not name.startswith("hf-hub:"):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none published"
        raise ModelError(f"'{name}' names an architecture, not weights: pass pretrained= a tag ({tags}) or a "
                         f"weight file, or pretrained='{RANDOM}' for random weights",
                         cli=f"--model {name} names an architecture, not weights: add --pretrained TAG ({tags}) or "
                             f"--pretrained FILE, or --pretrained {RANDOM} for random weights")
    if pretrained == RANDOM:
        pretrained = None
    elif pretrained is not None and hub.parse_file_ref(pretrained):
        pretrained = _fetch_file_ref(pretrained, name)
    elif pretrained is not None and not Path(pretrained).is_file() and pretrained.lower() not in (
            open_clip.list_pretrained_tags_by_model(name)) and not name.startswith("hf-hub:"):
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ModelError(f"unknown pretrained tag '{pretrained}' for '{name}' (known: {', '.join(tags) or 'none'}; "
                         "or a weight file that exists)")
    files, url = _hub_needs(name, pretrained) if pretrained or name.startswith("hf-hub:") else ([], None)
    local = hub.check(files, f"weights for {asked}", python_fix, cli_fix) if files else False
    if url:
        hub.check_url(url, f"weights for {asked}", python_fix, cli_fix)
    try:
        with hub.local_only(local), _quiet_root_logger():
            model = open_clip.create_model(name, pretrained=pretrained, precision=precision,
                                           force_quick_gelu=quick_gelu, force_image_size=image_size,
                                           weights_only=True)
            tokenizer = open_clip.get_tokenizer(name)
    except _LOAD_ERRORS as error:
        raise hub.unavailable(f"weights for {asked}", python_fix, cli_fix,
                              f"they could not be loaded ({first_line(error)})") from None
    if name.startswith("hf-hub:"):
        try:
            model_cfg = copy.deepcopy(open_clip.get_model_config(name))  # cached by create_model above
        except _LOAD_ERRORS:
            model_cfg = {"embed_dim": int(model.text_projection.shape[-1]) if hasattr(model, "text_projection")
                         else -1}
    else:
        model_cfg = copy.deepcopy(open_clip.get_model_config(name))
    if quick_gelu:
        model_cfg["quick_gelu"] = True
    if image_size is not None:
        model_cfg["vision_cfg"]["image_size"] = image_size
    preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    return model, tokenizer, {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}


def load_model(spec: str | Any, pretrained: str | None = None, device: str | torch.device | None = None,
               precision: str = "auto", quick_gelu: bool = False, image_size: int | None = None) -> ClipModel:
    """Load a CLIP model from a spec (see ``clipsuite.core.model_specs``) onto ``device``.

    ``precision`` (``clipsuite.core.precision``): ``fp32`` (fp32 on a GPU too), ``amp_bf16`` /
    ``amp_fp16`` (alias ``amp``; fp32 weights, autocast compute), ``bf16`` / ``fp16`` (weights cast),
    or ``auto`` (the default: an amp_* on a GPU, fp32 on the CPU).
    """
    try:
        chosen = resolve_precision(precision, _device(device))
    except ValueError as error:
        raise ModelError(str(error)) from None
    source = resolve_spec(spec, pretrained)
    if source.random_weights:
        note_random_weights(source.name)
    if source.kind == "transformers":  # CLIP as transformers holds it: its own backend module
        from clipsuite.core.backends.transformers_clip import build_clip_model

        built = build_clip_model(source, _device(device), chosen.name, quick_gelu, image_size)
        built.random_weights = source.random_weights
        return built
    build_precision = chosen.name if chosen.name in ("fp16", "bf16") else "fp32"
    if source.kind == "config":
        model, tokenizer, config = _build_from_config(source, build_precision, quick_gelu, image_size)
    else:
        model, tokenizer, config = _build_from_open_clip(source, build_precision, quick_gelu, image_size)
    target = _device(device)
    model = model.to(device=target, dtype=chosen.weight_dtype)
    clip = ClipModel(model, tokenizer, config, source.name, target, chosen.name)
    clip.random_weights = source.random_weights
    return clip
