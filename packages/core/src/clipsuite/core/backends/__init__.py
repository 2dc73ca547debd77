"""Model backends other than open_clip behind the same ``ClipModel`` API.

``transformers_clip``: CLIP as transformers holds it (``CLIPModel`` folders, ``hf-hub:`` repos,
``CLIPConfig``s and the built-in ``tiny-transformers``); its towers are ``towers.transformers_clip``.
"""
