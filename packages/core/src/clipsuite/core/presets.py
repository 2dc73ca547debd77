"""Named models: a spec for ``load_model`` with where its weights come from.

A preset is data: a spec for ``load_model`` (an open_clip name, ``hf-hub:`` id or built-in config),
its published weights (an open_clip tag, or ``hf-hub:org/repo/file`` for a plain state dict in a hub
repo), the loader that reads them, and the notes a user must know to get the paper's numbers. Only a
built-in offline config has random weights; every other preset names real weights, so a missing file is
an error, never a random model.
Each package declares its own presets as entry points of the group ``clipsuite.presets`` (the core
declares the general and offline ones below); ``find_preset`` reads that registry, so the core names
no domain model.
"""

from __future__ import annotations

from dataclasses import dataclass

from clipsuite.core.plugins import Registry


@dataclass(frozen=True)
class Preset:
    name: str
    spec: str
    pretrained: str | None
    domain: str
    source: str
    notes: str = ""
    # who reads the weights: "open_clip" (a tag, an open_clip hub repo, or a state-dict file in a hub repo),
    # "transformers" (a transformers CLIP folder, through the core's backend) or "built-in" (offline, random)
    loader: str = "open_clip"


REGISTRY: Registry[Preset] = Registry("clipsuite.presets", "preset", lambda value: isinstance(value, Preset),
                                      "a clipsuite.core.presets.Preset")


def find_preset(name: str) -> Preset | None:
    """The installed preset called ``name`` (any case), or ``None``."""
    return REGISTRY.find(name.lower())


def preset_names() -> list[str]:
    """The installed presets' names (reads metadata only)."""
    return REGISTRY.names()


def presets() -> dict[str, Preset]:
    """Every installed preset by name: the core's first, then each package's."""
    return REGISTRY.load_all()


# ---- the core's own presets (declared in packages/core/pyproject.toml) -------------------------------
TINY = Preset("tiny", "tiny", None, "offline", "built-in config (random init)",
              "ViT 64 px + 4-layer text transformer; trains in minutes on a CPU; tests and demo", "built-in")
TINY_HF = Preset("tiny-hf", "tiny-hf", None, "offline", "built-in config (random init)",
                 "tiny ViT + 2-layer BERT through transformers; exercises the Hugging Face text-tower path",
                 "built-in")
SMALL = Preset("small", "small", None, "offline", "built-in config (random init)", "96 px ViT, 6 blocks", "built-in")
TINY_TRANSFORMERS = Preset("tiny-transformers", "tiny-transformers", None, "offline",
                           "built-in transformers CLIPConfig (random init) + locally built tokenizer",
                           "tiny CLIPModel through transformers (the backend of PubMedCLIP / diffusers encoders)",
                           "built-in")
VIT_B_16 = Preset("vit-b-16", "ViT-B-16", "laion2b_s34b_b88k", "general",
                  "open_clip tag laion2b_s34b_b88k (hub laion/CLIP-ViT-B-16-laion2B-s34B-b88K)",
                  "general-purpose ViT-B/16")
VIT_B_16_OPENAI = Preset("vit-b-16-openai", "ViT-B-16-quickgelu", "openai", "general",
                         "open_clip tag openai (hub timm/vit_base_patch16_clip_224.openai)",
                         "OpenAI weights need QuickGELU: the -quickgelu config is used, otherwise results silently "
                         "degrade")
XLM_ROBERTA_B32 = Preset("xlm-roberta-b32", "xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k", "multilingual",
                         "open_clip tag laion5b_s13b_b90k (hub laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k)",
                         "multilingual text tower; RS-M-CLIP's starting point")
