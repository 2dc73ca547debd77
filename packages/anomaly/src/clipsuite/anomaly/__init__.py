"""clipsuite.anomaly: zero- and few-shot industrial anomaly detection on CLIP.

Methods (``methods/``): WinCLIP/WinCLIP+, AnomalyCLIP, AdaptCLIP-style adapters, patch memory.
``pipeline.Detector`` runs any of them on image files; ``data`` reads MVTec AD, VisA, meta.json and plain
folders; ``evaluate`` has the papers' metrics; ``train`` fits the learned ones; ``report`` writes heatmaps.
"""
