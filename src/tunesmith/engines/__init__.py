"""Execution engines for recipes: ``local`` (one process, the default) and ``ray`` (a cluster).

An engine only decides *where* the batches of a per-record stage run; the run driver
(:mod:`tunesmith.driver`) still writes the one run folder, so a run's content does not depend on
the engine. Nothing outside the ``ray_*`` modules of this package (``ray_engine``, ``ray_connect``,
``ray_llm``, ``ray_novelty``) imports ``ray`` (an optional extra: ``tunesmith[ray]``).
"""

from __future__ import annotations

from typing import Any

from tunesmith.errors import ConfigError

ENGINES = ("local", "ray")


def make_runner(engine: str | None, *, address: str | None = None, llm_config: Any = None) -> Any:
    """The batch runner for ``engine`` (None for the single-process ``local`` engine)."""
    if engine in (None, "", "local"):
        return None
    if engine != "ray":
        raise ConfigError(f"unknown engine '{engine}' (choose one of: {', '.join(ENGINES)})")
    try:
        from tunesmith.engines.ray_engine import RayRunner
    except ImportError as exc:
        raise ConfigError(
            f"--engine ray needs the ray extra: pip install 'tunesmith[ray]' ({exc})"
        ) from None
    return RayRunner(address=address, llm_config=llm_config)
