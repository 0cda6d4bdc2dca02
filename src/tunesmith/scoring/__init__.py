"""Resumable scoring jobs (:mod:`tunesmith.scoring.run`; moving into the run driver).

The model runtime lives in :mod:`tunesmith.llm.logprob`, the keep/drop decisions in
:mod:`tunesmith.filters.score_decision`.
"""
