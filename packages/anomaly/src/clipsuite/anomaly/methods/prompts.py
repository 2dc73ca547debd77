"""WinCLIP's compositional prompt ensemble (state words x templates), also used as the static text
side of the AdaptCLIP visual adapter. 7 normal states, 4 anomalous, 21 templates (the paper's list,
including its repeated "jpeg corrupted" template, kept so the averages match the reference)."""

from __future__ import annotations

NORMAL_STATES = ("{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect",
                 "{} without damage")
ANOMALOUS_STATES = ("damaged {}", "{} with flaw", "{} with defect", "{} with damage")
TEMPLATES = (
    "a cropped photo of the {}.", "a close-up photo of a {}.", "a close-up photo of the {}.",
    "a bright photo of a {}.", "a bright photo of the {}.", "a dark photo of the {}.", "a dark photo of a {}.",
    "a jpeg corrupted photo of the {}.", "a jpeg corrupted photo of the {}.", "a blurry photo of the {}.",
    "a blurry photo of a {}.", "a photo of a {}.", "a photo of the {}.", "a photo of a small {}.",
    "a photo of the small {}.", "a photo of a large {}.", "a photo of the large {}.",
    "a photo of the {} for visual inspection.", "a photo of a {} for visual inspection.",
    "a photo of the {} for anomaly detection.", "a photo of a {} for anomaly detection.",
)


def prompt_ensemble(class_name: str = "object") -> tuple[list[str], list[str]]:
    """(normal prompts, anomalous prompts) for one object name, state-major order."""
    def build(states: tuple[str, ...]) -> list[str]:
        return [template.format(state.format(class_name)) for state in states for template in TEMPLATES]
    return build(NORMAL_STATES), build(ANOMALOUS_STATES)


def readable_class_name(name: str) -> str:
    """``metal_nut`` -> ``metal nut`` (dataset folder names into prompt words)."""
    return name.replace("_", " ").strip() or "object"
