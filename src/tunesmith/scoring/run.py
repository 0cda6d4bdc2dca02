"""Moved: the scoring runner is the run driver's job now (:func:`tunesmith.jobs.run_scoring_job`).

Kept as an alias so callers written before the move keep working.
"""

from __future__ import annotations

from tunesmith.jobs import run_scoring_job

__all__ = ["run_scoring_job"]
