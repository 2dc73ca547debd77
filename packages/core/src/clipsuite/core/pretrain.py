"""An offline pretrained backbone: a small CLIP trained contrastively (``train_contrastive``, the core
Trainer) on the synthetic caption corpus (``clipsuite.core.synthetic_corpus``).

Random weights let a wrong sign or a wrong layer in a domain method pass every test; this backbone
has learned colours, shapes, defects and lesions, so the domain methods have something to transfer.
It is built once and cached on disk under a key that hashes the config (every training setting is a
field of ``PretrainConfig``) and the source of the modules that draw the corpus: change either and a
new one is trained; otherwise the folder is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import clipsuite.core.synthetic as _shapes
import clipsuite.core.synthetic_corpus as _corpus
from clipsuite.core.contrastive import ContrastiveConfig, train_contrastive

CACHE_ENV = "CLIPSUITE_CACHE"
CONFIG_FILE = "open_clip_config.json"


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that decides the trained weights: a change here (or in the corpus code) is a new key.
    The defaults are sized for about 155 optimizer steps of ``tiny`` on a CPU."""

    model: str = "tiny"
    n_pairs: int = 3000
    epochs: int = 5
    batch_size: int = 96
    lr: float = 2e-3
    warmup_steps: int = 20
    weight_decay: float = 0.1
    shared_positives: bool = True  # repeated captions ("a flawless button") count as positives of each other
    seed: int = 0
    image_size: int = 64
    defect_rate: float = 0.5

    def key(self) -> str:
        """Hash of this config and of the source of the modules that draw the corpus."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        for module in (_shapes, _corpus):
            digest.update(Path(module.__file__ or "").read_bytes())
        return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$CLIPSUITE_CACHE/pretrained-synthetic``, else ``~/.cache/clipsuite/pretrained-synthetic``."""
    base = os.environ.get(CACHE_ENV)
    return Path(base) if base else Path.home() / ".cache" / "clipsuite" / "pretrained-synthetic"


def cached_path(config: PretrainConfig | None = None, cache_dir: str | Path | None = None) -> Path:
    """Where the backbone of ``config`` lives (whether or not it was built yet)."""
    config = config or PretrainConfig()
    return Path(cache_dir or default_cache_dir()) / f"{config.model}-{config.key()}"


def find_cached(config: PretrainConfig | None = None, cache_dir: str | Path | None = None) -> Path | None:
    """The cached backbone folder (``load_model`` reads it), or None when it was not built."""
    path = cached_path(config, cache_dir)
    return path if (path / CONFIG_FILE).is_file() else None


def pretrain_synthetic(output_dir: str | Path, config: PretrainConfig | None = None,
                       progress: bool = False) -> Path:
    """Train the backbone of ``config`` into ``output_dir`` (a model folder for ``load_model``)."""
    config = config or PretrainConfig()
    pairs = _corpus.corpus_pairs(config.n_pairs, seed=config.seed, size=config.image_size,
                                 defect_rate=config.defect_rate)
    result = train_contrastive(pairs, output_dir, model=config.model,
                               contrastive=ContrastiveConfig(shared_positives=config.shared_positives),
                               verify=False, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                               warmup_steps=config.warmup_steps, weight_decay=config.weight_decay,
                               seed=config.seed,
                               progress=progress, drop_last=True, checkpoint_every=0, log_every=10)
    (Path(output_dir) / "pretrain_config.json").write_text(json.dumps({**asdict(config), "key": config.key()},
                                                                        indent=1))
    return result.output_dir


def ensure_pretrained(config: PretrainConfig | None = None, cache_dir: str | Path | None = None,
                      progress: bool = False) -> Path:
    """The cached backbone, trained first when missing. Built in a temporary folder beside the cache
    and renamed into place, so a concurrent or interrupted build never leaves a half-written model."""
    config = config or PretrainConfig()
    found = find_cached(config, cache_dir)
    if found is not None:
        return found
    target = cached_path(config, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".building-", dir=target.parent) as tmp:
        built = pretrain_synthetic(Path(tmp) / "model", config, progress=progress)
        try:
            built.rename(target)
        except OSError:  # another process finished first: its copy is as good as ours
            if find_cached(config, cache_dir) is None:
                raise
    return target


def remove_cached(config: PretrainConfig | None = None, cache_dir: str | Path | None = None) -> None:
    shutil.rmtree(cached_path(config, cache_dir), ignore_errors=True)


def demo_backbone(cache_dir: str | Path | None = None) -> tuple[str, str]:
    """(model spec, words for a report): the pretrained backbone when it is cached, else random ``tiny``.
    The demo never trains it (``clipsuite pretrain-synthetic`` does)."""
    found = find_cached(cache_dir=cache_dir)
    if found is not None:
        return str(found), f"the pretrained synthetic backbone ({found.name})"
    return "tiny", "the random tiny backbone (run `clipsuite pretrain-synthetic` for a pretrained one)"
