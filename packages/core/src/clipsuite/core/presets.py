"""Named models of the fields clipsuite serves, with where their weights come from.

A preset is data: a spec for ``load_model`` (an open_clip name, ``hf-hub:`` id or built-in config),
the pretrained tag when open_clip needs one, and the notes a user must know to get the paper's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    spec: str
    pretrained: str | None
    domain: str
    source: str
    notes: str = ""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("tiny", "tiny", None, "offline", "built-in config (random init)",
               "ViT 64 px + 4-layer text transformer; trains in minutes on a CPU; tests and demo"),
        Preset("tiny-hf", "tiny-hf", None, "offline", "built-in config (random init)",
               "tiny ViT + 2-layer BERT through transformers; exercises the Hugging Face text-tower path"),
        Preset("small", "small", None, "offline", "built-in config (random init)", "96 px ViT, 6 blocks"),
        Preset("vit-b-16", "ViT-B-16", "laion2b_s34b_b88k", "general", "open_clip tag laion2b_s34b_b88k",
               "general-purpose ViT-B/16"),
        Preset("vit-b-16-openai", "ViT-B-16-quickgelu", "openai", "general", "open_clip tag openai",
               "OpenAI weights need QuickGELU: the -quickgelu config is used, otherwise results silently degrade"),
        Preset("biomedclip", "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", None, "medical",
               "Hugging Face hub", "timm ViT-B/16 224 px + PubMedBERT text (context 256); BiomedCoOp backbone"),
        Preset("pubmedclip", "ViT-B-32-quickgelu", None, "medical", "flaviagiammarino/pubmed-clip-vit-base-patch32",
               "OpenAI CLIP ViT-B/32 fine-tuned on ROCO; QuickGELU; convert the HF checkpoint or pass "
               "pretrained=/path/to/weights"),
        Preset("rs-m-clip", "hf-hub:joaodaniel/RS-M-CLIP", None, "remote", "Hugging Face hub",
               "xlm-roberta-base-ViT-B-32 fine-tuned for 10-language remote-sensing retrieval"),
        Preset("remoteclip-b32", "ViT-B-32", None, "remote", "chendelong/RemoteCLIP (RemoteCLIP-ViT-B-32.pt)",
               "pass pretrained=/path/to/RemoteCLIP-ViT-B-32.pt"),
        Preset("georsclip-b32", "ViT-B-32", None, "remote", "Zilun/GeoRSCLIP (RS5M_ViT-B-32.pt)",
               "pass pretrained=/path/to/RS5M_ViT-B-32.pt"),
        Preset("xlm-roberta-b32", "xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k", "multilingual",
               "open_clip tag laion5b_s13b_b90k", "multilingual text tower; RS-M-CLIP's starting point"),
        Preset("winclip", "ViT-B-16-plus-240", "laion400m_e31", "anomaly", "open_clip tag laion400m_e31",
               "WinCLIP's backbone, 240 px, as the paper and anomalib"),
        Preset("anomalyclip", "ViT-L-14-336-quickgelu", "openai", "anomaly", "open_clip tag openai",
               "AnomalyCLIP / AdaptCLIP backbone, 518 px in the papers (force_image_size)"),
    ]
}


def find_preset(name: str) -> Preset | None:
    return PRESETS.get(name.lower())
