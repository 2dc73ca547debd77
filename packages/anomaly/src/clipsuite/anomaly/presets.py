"""The anomaly backbones as presets (declared under ``clipsuite.presets`` in this package's pyproject)."""

from __future__ import annotations

from clipsuite.core.presets import Preset

WINCLIP = Preset("winclip", "ViT-B-16-plus-240", "laion400m_e31", "anomaly",
                 "open_clip tag laion400m_e31 (hub timm/vit_base_patch16_plus_clip_240.laion400m_e31)",
                 "WinCLIP's backbone, 240 px, as the paper and anomalib")
ANOMALYCLIP = Preset("anomalyclip", "ViT-L-14-336-quickgelu", "openai", "anomaly",
                     "open_clip tag openai (hub timm/vit_large_patch14_clip_336.openai)",
                     "AnomalyCLIP / AdaptCLIP backbone, run at 518 px in the papers (--image-size 518)")

# the commands' default backbone (WinCLIP's): its open_clip name has no single tag, so the tag goes with it
DEFAULT_MODEL = "ViT-B-16-plus-240"
DEFAULT_PRETRAINED = "laion400m_e31"


def pretrained_tag(model: str, pretrained: str | None) -> str | None:
    """The pretrained tag to load ``model`` with: the default backbone's own when none is given."""
    return DEFAULT_PRETRAINED if pretrained is None and model == DEFAULT_MODEL else pretrained
