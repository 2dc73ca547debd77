"""Remote-sensing presets, declared through the ``clipsuite.presets`` entry point.

RemoteCLIP and GeoRSCLIP publish plain open_clip state dicts in hub repos (not open_clip hub folders):
the preset names that file as ``hf-hub:org/repo/file`` (read from the cache, or fetched once online);
offline without it, ``load_model`` refuses with one line naming the file (never a random ViT-B-32), and a
local copy can be passed: ``load_model("remoteclip-b32", pretrained="/path/RemoteCLIP-ViT-B-32.pt")``.
"""

from __future__ import annotations

from clipsuite.core.presets import Preset

RS_M_CLIP = Preset("rs-m-clip", "hf-hub:joaodaniel/RS-M-CLIP", None, "remote",
                   "Hugging Face hub joaodaniel/RS-M-CLIP (open_clip format)",
                   "xlm-roberta-base-ViT-B-32 fine-tuned on RS captions in 10 languages (en, pt, es, fr, de, nl, it, "
                   "zh, ko, ru) with self-distillation; multilingual queries")
REMOTECLIP_B32 = Preset("remoteclip-b32", "ViT-B-32", "hf-hub:chendelong/RemoteCLIP/RemoteCLIP-ViT-B-32.pt", "remote",
                        "file RemoteCLIP-ViT-B-32.pt from Hugging Face chendelong/RemoteCLIP",
                        "English; RSITMD/RSICD mR 49.38/35.26 after fine-tuning (paper)")
GEORSCLIP_B32 = Preset("georsclip-b32", "ViT-B-32", "hf-hub:Zilun/GeoRSCLIP/ckpt/RS5M_ViT-B-32.pt", "remote",
                       "file ckpt/RS5M_ViT-B-32.pt from Hugging Face Zilun/GeoRSCLIP",
                       "English; zero-shot EuroSAT 61.40, RESISC45 72.74, RSITMD mR 35.33 (paper)")
TINY_MULTILINGUAL = Preset("tiny-multilingual", "tiny-multilingual", None, "offline",
                           "built-in config (random init) + tokenizer trained in the repo",
                           "tiny ViT + 2-layer XLM-R text tower, Unigram tokenizer over Latin, Cyrillic, Chinese "
                           "and Korean script; tests and demo of multilingual retrieval", "built-in")
