"""The Ray engine: a recipe's per-record stages run as Ray Data ``map_batches`` on a cluster.

Pure stages (no model, no LLM) run as Ray tasks; stages that load a model or call an LLM run in
an actor pool, so ``setup`` runs once per actor, not once per batch. Stages that must see every
row at once (dedup, selection) run in the driver process, as in the local engine.

Rows travel as Parquet shards in the stage's ``staging/`` folder (:mod:`tunesmith.engines.shards`):
the driver writes the input shards, each worker reads one and writes its output shard, and the
driver merges the output shards in input order (``preserve_order``) through the run driver, which
writes the one run folder: its content is the one the local engine writes. A killed driver finds
the shards its workers finished on disk and merges them without running them again; rows already
in the folder are not sent again; LLM answers live in the job's shared request cache
(:mod:`tunesmith.engines.ray_llm`), so a shard re-executed after a worker died replays its
finished calls from the cache. Workers count their calls under the run's ledger id, so the driver
counts every paid call from the cache's usage rows, including those of a worker that died.
``max_calls``/``max_cost`` are admitted per request by the job's limiter actor; a shard whose
request it refused writes nothing, and the driver stops resumably once the running shards end.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import ray

from tunesmith.engines import shards
from tunesmith.engines.ray_connect import connect
from tunesmith.engines.ray_llm import ActorCache, add_usage, start_services, worker_llm
from tunesmith.engines.shards import Shard
from tunesmith.errors import BudgetExceeded, ConfigError
from tunesmith.llm.cache import RequestCache, default_cache_path
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.usage import Budget, Ledger
from tunesmith.records import Record
from tunesmith.stages import Stage, StageResult

#: why a worker cannot find an input shard: the run folder is not on storage it sees
_NOT_SHARED = "on a cluster of several machines the run folder must be on storage every node sees"


def _run_shards(
    stage: Stage, llm: Any, run_id: str, batch: dict[str, np.ndarray]
) -> dict[str, list[Any]]:
    """Run ``stage`` on each input shard of ``batch`` and write its output shard.

    A shard's usage is counted in a ledger of the run's own id, so each call it pays is stored
    with a usage row of this run (one SQLite transaction with the answer): the driver counts it
    from the cache even when this worker dies before its shard is merged. A shard whose request
    the job's budget refused writes no output shard, as a local batch writes no rows then: its
    ``stopped`` entry is its usage (JSON), empty for a finished shard.
    """
    done, stopped = [], []
    for index, source, target in zip(batch["index"], batch["source"], batch["target"], strict=True):
        if not Path(source).exists():
            node = ray.util.get_node_ip_address()
            raise FileNotFoundError(f"{source}: not on node {node}; {_NOT_SHARED}")
        records = shards.read_rows(Path(source))
        ledger = Ledger(run_id=run_id)
        if llm is not None:
            llm.ledger = ledger
        done.append(int(index))
        try:
            result = stage.run(records, llm)
        except BudgetExceeded:  # its answers are in the cache; the rerun redoes the shard
            stopped.append(json.dumps(ledger.to_dict()))
            continue
        usage = ledger.to_dict()
        shards.write_result(Path(target), result, inputs=shards.inputs_key(records), usage=usage)
        stopped.append("")
    return {"index": done, "stopped": stopped}


class _ShardWorker:
    """One actor of the pool: builds the stage (and its LLM client) once, then runs shards."""

    def __init__(
        self, spec: tuple[str, dict[str, Any]], llm: tuple[Any, Any, Any] | None, run_id: str
    ) -> None:
        from tunesmith import registry

        self.stage: Stage = registry.stages.get(spec[0])(**spec[1])
        self.stage.setup()
        self.llm = worker_llm(*llm) if llm is not None else None
        self.run_id = run_id

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        return _run_shards(self.stage, self.llm, self.run_id, batch)


def _pure_shards(
    spec: tuple[str, dict[str, Any]], run_id: str
) -> Callable[[dict[str, np.ndarray]], dict[str, list[Any]]]:
    def run(batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        from tunesmith import registry

        stage = registry.stages.get(spec[0])(**spec[1])
        stage.setup()
        return _run_shards(stage, None, run_id, batch)

    return run


def _not_shared(exc: BaseException) -> str | None:
    """The worker's "run folder not on this node" line, from the traceback Ray hands back (the
    worker's exception itself does not survive Ray Data's wrapping)."""
    for line in str(exc).splitlines():
        if _NOT_SHARED in line:
            return line.removeprefix("FileNotFoundError: ").strip()
    return None


class RayRunner:
    """Runs per-record stages on Ray for :func:`tunesmith.recipes.run_recipe`.

    Args:
        address: a cluster to join (``ray://`` or ``host:port``); default ``$RAY_ADDRESS``, else a
            local cluster is started.
        llm_config: the recipe's LLM settings; ``concurrency``, ``rpm`` and ``tpm`` apply to the
            whole job.
        workers: actors per LLM stage (default: the cluster's CPUs, at least 1).
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        llm_config: LLMConfig | None = None,
        workers: int | None = None,
    ) -> None:
        connect(address)
        self.llm_config = llm_config
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._services: tuple[Any, Any] | None = None

    def services(self) -> tuple[Any, Any]:
        """The limiter and cache actors (started on first use)."""
        if self._services is None:
            config = self.llm_config or LLMConfig()
            path = config.cache_path or str(default_cache_path())
            self._services = start_services(config, path)
        return self._services

    def run_stage(
        self,
        spec: tuple[str, dict[str, Any]],
        stage: Stage,
        records: Sequence[Record],
        *,
        batch_size: int,
        done_ids: set[str],
        ledger: Ledger,
        on_batch: Callable[[StageResult], None],
        staging: Path,
    ) -> None:
        """Run ``stage`` over the rows not in ``done_ids``, through Parquet shards in
        ``staging`` (:mod:`tunesmith.engines.shards`); report each shard, in input order, and
        remove ``staging`` once the stage is done."""
        cache = self._ledger_cache(stage)
        if cache is not None:  # calls paid after the last save (a killed driver, or worker)
            ledger.catch_up(cache)
        if stage.uses_llm:  # the budget counts what the run paid before (resumes included)
            limiter, _ = self.services()
            total = ledger.total()
            ray.get(limiter.set_spent.remote(total.calls, total.cost_usd))
        plan = shards.plan_shards(records, batch_size, done_ids, staging)
        ready = {s.index: found for s in plan if (found := shards.finished(s)) is not None}
        todo = [s for s in plan if s.index not in ready]
        for shard in todo:
            shard.target.unlink(missing_ok=True)  # written for other rows: redone
            shards.write_rows(shard.source, shard.rows)
        results = iter(self._map(spec, stage, todo, ledger.run_id))
        for shard in plan:
            if shard.index in ready:
                result, usage = ready[shard.index]
            else:
                index, stopped = next(results)
                if index != shard.index:  # preserve_order is what keeps the folder's order
                    raise RuntimeError(f"shard {index} came back before shard {shard.index}")
                if stopped is not None:
                    self._stop(ledger, cache, [stopped, *(u for _, u in results if u)])
                result, usage = shards.read_result(shard.target)
            add_usage(ledger, usage, paid=cache is None)
            on_batch(result)
            if cache is not None:
                ledger.catch_up(cache)
        shutil.rmtree(staging, ignore_errors=True)

    def _ledger_cache(self, stage: Stage) -> RequestCache | None:
        """The shared cache the run's paid calls are counted from (None: no cache, then the
        shards' own usage is the count)."""
        if not stage.uses_llm:
            return None
        _, store = self.services()
        # an ActorCache serves the RequestCache interface that Ledger.catch_up reads
        return ActorCache(store) if store is not None else None  # type: ignore[return-value]

    def _map(
        self, spec: tuple[str, dict[str, Any]], stage: Stage, todo: list[Shard], run_id: str
    ) -> Iterator[tuple[int, dict[str, Any] | None]]:
        """The index of each shard of ``todo`` as a worker finishes it, in ``todo``'s order,
        with the shard's usage when the job's budget stopped it (None: it finished)."""
        if not todo:
            return
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # the folder's rows in the local order
        items = [{"index": s.index, "source": str(s.source), "target": str(s.target)} for s in todo]
        data = ray.data.from_items(items, override_num_blocks=len(items))
        kwargs: dict[str, Any] = {"batch_size": 1, "num_cpus": 0.5}
        if stage.uses_llm or type(stage).setup is not Stage.setup:
            llm = None
            if stage.uses_llm:
                limiter, store = self.services()
                llm = (self.llm_config or LLMConfig(), limiter, store)
            pool = ray.data.ActorPoolStrategy(size=self.workers)
            mapped = data.map_batches(_ShardWorker, fn_constructor_args=(spec, llm, run_id),
                                      compute=pool, **kwargs)  # fmt: skip
        else:
            mapped = data.map_batches(_pure_shards(spec, run_id), **kwargs)
        try:
            for out in mapped.iter_batches(batch_size=None, batch_format="numpy"):
                for i, stopped in zip(out["index"], out["stopped"], strict=True):
                    yield int(i), json.loads(stopped) if stopped else None
        except ray.exceptions.RayTaskError as exc:
            line = _not_shared(exc)
            if line is not None:  # a node that cannot see the run folder
                raise ConfigError(line) from None
            raise

    def _stop(
        self, ledger: Ledger, cache: RequestCache | None, stopped: list[dict[str, Any]]
    ) -> NoReturn:
        """The job's budget refused a request: every shard still running has now finished or
        stopped (``stopped`` holds the usage of those that stopped; the caller drained them
        rather than cancel workers whose answers may be on their way), so every paid call is
        stored and counted. Stop resumably; finished shards not merged yet stay in ``staging``
        for the rerun, which merges them from disk."""
        for usage in stopped:
            add_usage(ledger, usage, paid=cache is None)
        if cache is not None:
            ledger.catch_up(cache)
        config = self.llm_config or LLMConfig()
        raise Budget(max_cost=config.max_cost, max_calls=config.max_calls).exceeded(ledger)

    def run_whole(self, stage: Stage, records: Sequence[Record]) -> StageResult | None:
        """A whole-set stage on the cluster when there is a sharded form of it (the exact
        novelty filter, :mod:`tunesmith.engines.ray_novelty`); None: run it in this process
        (e.g. ``mode: minhash``, whose LSH index is cheap enough to stay in the driver)."""
        from tunesmith.filters.novelty_stage import NoveltyStage

        if isinstance(stage, NoveltyStage) and not stage.top_k and stage.mode == "exact":
            from tunesmith.engines.ray_novelty import novelty_on_ray

            return novelty_on_ray(stage, records, shards=self.workers)
        return None

    def peak_in_flight(self) -> int:
        """The most LLM requests the job ever had in flight at once (from the limiter)."""
        limiter, _ = self.services()
        return int(ray.get(limiter.stats.remote())["peak"])
