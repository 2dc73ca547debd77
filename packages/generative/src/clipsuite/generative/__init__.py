"""clipsuite.generative: virtual try-on (LaDI-VTON) and CLIP delta-space editing on diffusers,
with paired and unpaired image metrics."""
