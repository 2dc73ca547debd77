"""Names a command line checks before anything heavy is imported (no torch here)."""

CATEGORIES = ("upper_body", "lower_body", "dresses")      # Dress Code's; VITON-HD is upper_body
STAGES = ("warping", "emasc", "inversion", "tryon")       # LaDI-VTON's training stages, in order
PART_SIZES = ("micro", "tiny", "sd2-inpainting")          # seeded random diffusion parts (or a folder)
