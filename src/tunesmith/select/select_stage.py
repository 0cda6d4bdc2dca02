"""The selection stage (``select``): deita quality-plus-diversity or k-center greedy.

Liu et al. 2024 (deita) and Zhou et al. 2023 (LIMA) for the score-then-diversity walk, Sener &
Savarese 2018 for k-center; the algorithms and the embedding cache live in
:mod:`tunesmith.select.diversity`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from tunesmith.errors import ConfigError
from tunesmith.llm.client import LLM
from tunesmith.records import Record
from tunesmith.select.diversity import (
    FIELDS,
    METHODS,
    cached_embed,
    embed_text,
    greedy_diverse,
    kcenter_greedy,
    parse_score_spec,
    rank_order,
    score_of,
)
from tunesmith.stages import Rejected, Stage, StageResult


class SelectStage(Stage):
    """Select ``k`` rows by score with a similarity bound (deita) or by pure diversity.

    Args:
        k: how many rows to keep.
        score: a stored score key or a product "a*b" (deita); None = no ranking (input order).
        threshold: max cosine similarity of a new row to the rows already selected (deita).
        method: "deita" (score + similarity bound) or "kcenter" (diversity only; a given score
            only picks the first center).
        field: what is embedded: "instruction", "prompt" (instruction + input) or "all".
        embedder: sentence-transformers model (None = the packaged all-MiniLM-L6-v2).
        embedding_cache: an ``.npz`` file keeping embeddings by text hash, so reselecting with
            another k, score or threshold does not embed again (use one file per embedder).
        ascending: rank smallest scores first (e.g. perplexity).

    Writes ``scores["select_rank"]`` (position in the selection) on kept rows; rejected rows
    carry their max similarity or "beyond k". Needs the whole set in one ``run`` call.
    """

    name: ClassVar[str] = "select"
    per_record: ClassVar[bool] = False

    def __init__(
        self,
        *,
        k: int = 1000,
        score: str | None = None,
        threshold: float = 0.9,
        method: str = "deita",
        field: str = "all",
        embedder: str | None = None,
        embedding_cache: str | None = None,
        ascending: bool = False,
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"select: method must be one of {', '.join(METHODS)}, got '{method}'")
        if field not in FIELDS:
            raise ConfigError(f"select: field must be one of {', '.join(FIELDS)}, got '{field}'")
        if k < 1:
            raise ConfigError(f"select: k must be >= 1, got {k}")
        self.k = k
        self.score = score
        self.threshold = threshold
        self.method = method
        self.field = field
        self.embedder = embedder
        self.embedding_cache = str(embedding_cache) if embedding_cache else None
        self.ascending = ascending
        self._keys = parse_score_spec(score) if score else []

    def embed(self, records: Sequence[Record]) -> NDArray[np.float32]:
        """Embeddings of the records' texts, reusing ``embedding_cache`` entries by text hash."""
        from tunesmith.embeddings import embed

        texts = [embed_text(r, self.field) for r in records]
        if not self.embedding_cache:
            return embed(texts, self.embedder)
        return cached_embed(texts, Path(self.embedding_cache), self.embedder)

    def order_note(self) -> str:
        """One line saying how rows are ranked, so a run without ``score`` says it."""
        if self.method == "kcenter":
            start = f"the best {self.score} row" if self.score else "the first row"
            return f"kcenter: diversity only (farthest row next), starting from {start}"
        if self.score:
            way = "lowest" if self.ascending else "highest"
            return f"deita: rows ranked by {self.score}, {way} first, cosine <= {self.threshold}"
        return (
            "no score given: deita keeps rows in input order (earlier rows win ties of "
            f"similarity, cosine <= {self.threshold}); rank with --score KEY, or use "
            "--method kcenter for diversity only"
        )

    def check_scores(self, records: Sequence[Record]) -> None:
        """Raise a one-line ConfigError when no row holds every key of ``score``, naming the
        missing key(s) and the score keys the rows do have."""
        if not self._keys or not records:
            return
        if any(score_of(r, self._keys) is not None for r in records):
            return
        present = sorted({k for r in records for k in r.scores})
        missing = [k for k in self._keys if not any(k in r.scores for r in records)]
        what = ", ".join(f"'{k}'" for k in missing) if missing else f"a numeric '{self.score}'"
        have = ", ".join(present) if present else "none"
        raise ConfigError(
            f"select --score {self.score}: no row has {what} (scores present: {have})"
        )

    def run(self, records: Sequence[Record], llm: LLM | None = None) -> StageResult:
        self.check_scores(records)
        return self.select(records, self.embed(records))

    def select(self, records: Sequence[Record], emb: NDArray[np.floating[Any]]) -> StageResult:
        """Select from ``records`` given their embeddings (rows without the score are rejected;
        none having it is an error, see :meth:`check_scores`)."""
        self.check_scores(records)
        result = StageResult()
        usable = list(range(len(records)))
        values: list[float] = [0.0] * len(records)
        if self._keys:
            usable = []
            for i, rec in enumerate(records):
                v = score_of(rec, self._keys)
                if v is None:
                    result.rejected.append(Rejected(rec, None, f"no {self.score} score"))
                else:
                    usable.append(i)
                    values[i] = -v if self.ascending else v
        sub = np.asarray(emb)[usable]
        too_close: dict[int, float] = {}
        order = rank_order([values[i] for i in usable])
        if self.method == "kcenter":  # start from the best-scored row (row 0 without scores)
            local = kcenter_greedy(sub, self.k, first=int(order[0])) if usable else []
        else:
            local, too_close = greedy_diverse(sub, order, self.k, self.threshold)
        chosen = [usable[j] for j in local]
        for rank, i in enumerate(chosen):
            result.kept.append(records[i].with_scores(select_rank=rank))
        picked = set(chosen)
        for j, i in enumerate(usable):
            if i in picked:
                continue
            if j in too_close:
                sim = too_close[j]
                reason = f"cosine {sim:.3f} > {self.threshold} to a selected row"
                result.rejected.append(Rejected(records[i], round(sim, 6), reason))
            else:
                result.rejected.append(Rejected(records[i], None, f"beyond k={self.k}"))
        return result
