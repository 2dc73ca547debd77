"""The clipsuite-generative command line app."""
