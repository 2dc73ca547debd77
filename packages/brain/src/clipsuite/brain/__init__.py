"""clipsuite.brain: fMRI decoding into CLIP space and CLIP-based voxel-wise encoding models (NIfTI, GOD-style HDF5)."""
