"""The remote-sensing models as presets (declared under ``clipsuite.presets`` in this package's pyproject)."""

from __future__ import annotations

from clipsuite.core.presets import Preset

RS_M_CLIP = Preset("rs-m-clip", "hf-hub:joaodaniel/RS-M-CLIP", None, "remote", "Hugging Face hub",
                   "xlm-roberta-base-ViT-B-32 fine-tuned for 10-language remote-sensing retrieval")
REMOTECLIP_B32 = Preset("remoteclip-b32", "ViT-B-32", None, "remote", "chendelong/RemoteCLIP (RemoteCLIP-ViT-B-32.pt)",
                        "pass pretrained=/path/to/RemoteCLIP-ViT-B-32.pt")
GEORSCLIP_B32 = Preset("georsclip-b32", "ViT-B-32", None, "remote", "Zilun/GeoRSCLIP (RS5M_ViT-B-32.pt)",
                       "pass pretrained=/path/to/RS5M_ViT-B-32.pt")
