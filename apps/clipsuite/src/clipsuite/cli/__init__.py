"""clipsuite."""
