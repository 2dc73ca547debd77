"""Training methods of the remote-sensing domain (pure torch; the Trainer task lives in ``train.py``)."""
