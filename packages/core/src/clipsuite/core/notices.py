"""What a run must tell its user about how it ran: random weights, said once on the console and on its pages.

A model built from a config with no weights (``tiny``, ``tiny-multilingual``, the generative ``micro``
parts) computes, but at chance. Whoever builds one calls ``note_random_weights``: the note goes to the
``clipsuite`` logger once per process (a CLI shows it as one line) and is kept, so that every HTML page
the run writes shows it too (``run_notes``). Torch-free.
"""

from __future__ import annotations

import logging

__all__ = ["clear_notes", "note_random_weights", "random_weights_note", "run_notes"]

logger = logging.getLogger("clipsuite.notices")
_notes: dict[str, str] = {}  # what was said this process, in order, by the thing it is about


def random_weights_note(name: str) -> str:
    return (f"{name} has random weights (a built-in config; no trained weights were loaded): without training, "
            "its results are at chance")


def note_random_weights(name: str) -> str:
    """Say once per process that ``name`` runs on random weights; returns the note."""
    note = random_weights_note(name)
    if name not in _notes:
        _notes[name] = note
        logger.warning(note)
    return note


def run_notes() -> list[str]:
    """The notes said so far in this process, for the pages a command writes."""
    return list(_notes.values())


def clear_notes() -> None:
    """Forget the notes (a long-lived process starting another run; tests)."""
    _notes.clear()
