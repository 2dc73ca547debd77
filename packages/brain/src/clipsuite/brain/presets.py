"""Brain presets, declared through the ``clipsuite.presets`` entry point.

MindEye decodes into the stimulus space of OpenAI's CLIP ViT-L/14; giving ``--model mindeye-clip`` to
``clipsuite-brain fit|encode`` embeds the stimuli in that space (the open_clip ``openai`` weights, read
from the cache; offline without them, one line naming them, never a random ViT-L).
"""

from __future__ import annotations

from clipsuite.core.presets import Preset

MINDEYE_CLIP = Preset(
    "mindeye-clip", "ViT-L-14", "openai", "brain",
    "Hugging Face hub timm/vit_large_patch14_clip_224.openai (open_clip tag openai, OpenAI CLIP ViT-L/14)",
    "MindEye's target space (NSD: 93.6 % image / 90.1 % brain 300-way retrieval, paper); clipsuite.brain "
    "decodes the pooled 768-d image and text embeddings, not the 257 tokens")
