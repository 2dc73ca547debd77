"""Brain decoders as pure torch modules (one module per method)."""
