"""The clipsuite-remote command line app."""
