"""The medical models as presets (declared under ``clipsuite.presets`` in this package's pyproject)."""

from __future__ import annotations

from clipsuite.core.presets import Preset

BIOMEDCLIP = Preset("biomedclip", "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", None, "medical",
                    "Hugging Face hub microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224 (open_clip format)",
                    "timm ViT-B/16 224 px + PubMedBERT text (context 256); BiomedCoOp backbone")
# PubMedCLIP is published as a transformers CLIPModel folder: read by the core's transformers backend
PUBMEDCLIP = Preset("pubmedclip", "hf-hub:flaviagiammarino/pubmed-clip-vit-base-patch32", None, "medical",
                    "Hugging Face hub flaviagiammarino/pubmed-clip-vit-base-patch32 (transformers CLIPModel)",
                    "OpenAI CLIP ViT-B/32 (QuickGELU) fine-tuned on ROCO radiology captions; the MedVQA backbone",
                    "transformers")
