"""Silence transformers' own progress bars and info logs in CLI runs (ours shows progress)."""

from __future__ import annotations

import os


def quiet_transformers() -> None:
    """Turn off the weight-loading/saving bars and warnings-level chatter of transformers."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from transformers.utils import logging
    except ImportError:
        return
    logging.set_verbosity_error()
    logging.disable_progress_bar()
