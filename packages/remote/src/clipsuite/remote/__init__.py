"""clipsuite.remote: remote-sensing CLIP.

Multilingual image-text retrieval, GeoTIFF scene tiling and search, zero-shot scene classification.
"""
