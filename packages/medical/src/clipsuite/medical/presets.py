"""The medical models as presets (declared under ``clipsuite.presets`` in this package's pyproject)."""

from __future__ import annotations

from clipsuite.core.presets import Preset

BIOMEDCLIP = Preset("biomedclip", "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", None, "medical",
                    "Hugging Face hub",
                    "timm ViT-B/16 224 px + PubMedBERT text (context 256); BiomedCoOp backbone")
PUBMEDCLIP = Preset("pubmedclip", "ViT-B-32-quickgelu", None, "medical",
                    "flaviagiammarino/pubmed-clip-vit-base-patch32",
                    "OpenAI CLIP ViT-B/32 fine-tuned on ROCO; QuickGELU; convert the HF checkpoint or pass "
                    "pretrained=/path/to/weights")
