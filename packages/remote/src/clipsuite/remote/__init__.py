"""clipsuite.remote: Remote-sensing CLIP: multilingual image-text retrieval, GeoTIFF scene tiling and search, zero-shot scene classification."""
