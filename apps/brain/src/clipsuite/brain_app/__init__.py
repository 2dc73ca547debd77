"""The clipsuite-brain command line app."""
