"""Keep third-party chatter (warnings, loading progress bars, library logs) off the console.

The model-based metrics load transformers, sentence-transformers, scikit-learn, spaCy and faiss;
each may print deprecation or future warnings, "Loading weights" bars and INFO logs that bury
tunesmith's own output. ``quiet_libraries()`` silences them for the duration of a computation
and restores everything afterwards. Errors still raise: only chatter is dropped.

Environment switches (``TQDM_DISABLE`` ...) only reach libraries imported after they are set
(tqdm reads its environment at import), so Python-level writes to ``sys.stderr`` are dropped
too: a caller that reports progress inside the block writes to the stream it held before.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, suppress
from typing import Any

#: Environment switches the libraries read (progress bars and verbosity).
_ENV = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
_LOGGERS = (
    "transformers",
    "sentence_transformers",
    "huggingface_hub",
    "datasets",
    "torch",
    "sklearn",
    "faiss",
    "mauve",
    "spacy",
    "urllib3",
    "filelock",
)


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence third-party warnings, progress bars and logs below ERROR inside the block."""
    _import_env_readers()
    saved_env = {k: os.environ.get(k) for k in _ENV}
    saved_levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    # transformers' verbosity is its logger's level: read it before that level is changed below,
    # or the restore would keep ERROR (seen as a failure of tests/metrics/test_quiet.py only when
    # an earlier test had imported transformers)
    restore_transformers = _quiet_loaded_transformers()
    os.environ.update(_ENV)
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stderr(_Discard()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        restore_transformers()
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


def _import_env_readers() -> None:
    """Import tqdm before ``TQDM_DISABLE`` is set: tqdm turns the environment it sees at import
    into its defaults, so a first import inside the block would disable every later bar in the
    process (a notebook's, or our own after a report was written)."""
    with suppress(ImportError):  # not installed: nothing to protect
        import tqdm  # noqa: F401


class _Discard(io.StringIO):
    """A stderr stand-in that keeps nothing (progress bars and prints of libraries)."""

    def write(self, text: str) -> int:
        return len(text)


def _quiet_loaded_transformers() -> Callable[[], None]:
    """transformers reads its verbosity at import: set it directly when it is already loaded.
    Returns the function that puts its verbosity back."""
    module: Any = sys.modules.get("transformers.utils.logging")
    if module is None:
        return lambda: None
    level = module.get_verbosity()
    module.set_verbosity_error()
    return lambda: module.set_verbosity(level)
