"""Names a command line checks before anything heavy is imported (no torch here)."""

from clipsuite.core.errors import InputError

CATEGORIES = ("upper_body", "lower_body", "dresses")      # Dress Code's; VITON-HD is upper_body
STAGES = ("warping", "emasc", "inversion", "tryon")       # LaDI-VTON's training stages, in order
PART_SIZES = ("micro", "tiny", "sd2-inpainting-random")   # seeded random diffusion parts (or a folder)
PART_PRESETS = ("sd2-inpainting",)                         # published parts, from the Hugging Face cache
STAGE_PRESETS = ("ladi-vton-vitonhd", "ladi-vton-dresscode")  # LaDI-VTON's released stage weights
WEIGHT_PRECISIONS = ("fp32", "fp16", "bf16")               # what try-on casts its weights to (pipeline.MemoryOptions)


def check_category(category: str) -> str:
    if category not in CATEGORIES:
        raise InputError(f"unknown category '{category}' (choose from {', '.join(CATEGORIES)})")
    return category


# DeltaSpace edit strength: the code moves by strength x the mapper's answer to a text delta scaled to the mean
# change between two training images, so 1 is a change as large as a typical one between two of them and 2 twice
# that (beyond, the code leaves what the mapper and generator were fitted on). A negative strength is not the
# opposite edit (the mapper is no odd function of its delta): the opposite edit swaps the target and neutral prompts.
EDIT_STRENGTH = (0.0, 2.0)


def strength_problem(strength: float, name: str = "edit strength") -> str | None:
    """Why ``strength`` is outside ``EDIT_STRENGTH`` (one line), or None."""
    low, high = EDIT_STRENGTH
    if low <= strength <= high:  # False for NaN
        return None
    opposite = "; for the opposite edit swap the target and neutral prompts" if strength < low else ""
    return (f"{name} {strength:g}: must be in [{low:g}, {high:g}] (0: no edit, 1: a change as large as a typical one "
            f"between two training images){opposite}")
