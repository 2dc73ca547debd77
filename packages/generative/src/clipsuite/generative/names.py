"""Names a command line checks before anything heavy is imported (no torch here)."""

CATEGORIES = ("upper_body", "lower_body", "dresses")      # Dress Code's; VITON-HD is upper_body
STAGES = ("warping", "emasc", "inversion", "tryon")       # LaDI-VTON's training stages, in order
PART_SIZES = ("micro", "tiny", "sd2-inpainting-random")   # seeded random diffusion parts (or a folder)
PART_PRESETS = ("sd2-inpainting",)                         # published parts, from the Hugging Face cache
STAGE_PRESETS = ("ladi-vton-vitonhd", "ladi-vton-dresscode")  # LaDI-VTON's released stage weights
