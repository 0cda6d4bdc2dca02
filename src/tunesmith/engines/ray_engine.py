"""The Ray engine: a recipe's per-record stages run as Ray Data ``map_batches`` on a cluster.

Pure stages (no model, no LLM) run as Ray tasks; stages that load a model or call an LLM run in
an actor pool, so ``setup`` runs once per actor, not once per batch. Stages that must see every
row at once (dedup, selection) run in the driver process, as in the local engine.

The driver consumes the results in input order (``preserve_order``) and reports each finished
batch to the run driver, which writes the one run folder: its content is the one the local
engine writes. Rows already in the folder are not sent again (resume); LLM answers live in the
job's shared request cache (:mod:`tunesmith.engines.ray_llm`), so a batch re-executed after a
worker died, or after the driver was killed, replays its finished calls from the cache.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray._private import ray_constants

from tunesmith.engines.ray_llm import add_usage, start_services, worker_llm
from tunesmith.errors import ConfigError
from tunesmith.llm.cache import default_cache_path
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.usage import Budget, Ledger
from tunesmith.records import Record
from tunesmith.stages import Stage, StageResult

SRC = str(Path(__file__).resolve().parents[2])


LOOPBACK = "127.0.0.1"


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` means a cluster on this machine's loopback (``None``: a new local one)."""
    if not address:
        return True
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def loopback_only() -> None:
    """Keep a local cluster's processes (GCS, raylets, workers, this driver) on 127.0.0.1.

    Ray 2.60 rewrites a loopback node or GCS address to the machine's outward IP
    (``services.resolve_ip_for_localhost``), even ``_node_ip_address="127.0.0.1"``, so a driver
    of a loopback cluster dials the GCS on an address nothing listens on and hangs. Ray keeps
    loopback only when multi-host clusters are off: the environment variable covers the processes
    Ray starts, the constant covers this one (it read the variable when it imported ray).
    """
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``), or start a local one on 127.0.0.1."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if is_loopback(address):
        loopback_only()
    path = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
    runtime_env = {"env_vars": {"PYTHONPATH": path}}
    if address:
        try:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"--ray-address {address}: cannot join the cluster ({exc})") from None
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env=runtime_env,
                 log_to_driver=False)  # fmt: skip


class _StageWorker:
    """One actor of the pool: builds the stage (and its LLM client) once, then runs batches."""

    def __init__(self, spec: tuple[str, dict[str, Any]], llm: tuple[Any, Any, Any] | None):
        from tunesmith import registry

        self.stage: Stage = registry.stages.get(spec[0])(**spec[1])
        self.stage.setup()
        self.llm = worker_llm(*llm) if llm is not None else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
        records = [pickle.loads(b) for b in batch["row"]]
        ledger = Ledger()
        if self.llm is not None:
            self.llm.ledger = ledger  # this batch's usage only; the driver sums them
        result = self.stage.run(records, self.llm)
        return {"blob": [pickle.dumps((result, ledger.to_dict()))]}


def _pure_batch(spec: tuple[str, dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def run(batch: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
        from tunesmith import registry

        stage = registry.stages.get(spec[0])(**spec[1])
        stage.setup()
        result = stage.run([pickle.loads(b) for b in batch["row"]], None)
        return {"blob": [pickle.dumps((result, Ledger().to_dict()))]}

    return run


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
    ) -> None:
        """Run ``stage`` over the rows not in ``done_ids``; report each batch, in input order."""
        todo = [r for r in records if r.id not in done_ids]
        if not todo:
            return
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # the folder's rows in the local order
        data = ray.data.from_items([{"row": pickle.dumps(r)} for r in todo],
                                   override_num_blocks=max(1, -(-len(todo) // batch_size)))  # fmt: skip
        kwargs: dict[str, Any] = {"batch_size": batch_size, "zero_copy_batch": True}
        if stage.uses_llm or type(stage).setup is not Stage.setup:
            llm = None
            if stage.uses_llm:
                limiter, store = self.services()
                llm = (self.llm_config or LLMConfig(), limiter, store)
            mapped = data.map_batches(_StageWorker, fn_constructor_args=(spec, llm),
                                      num_cpus=0.5,
                                      compute=ray.data.ActorPoolStrategy(size=self.workers), **kwargs)  # fmt: skip
        else:
            mapped = data.map_batches(_pure_batch(spec), num_cpus=0.5, **kwargs)
        for out in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            for blob in out["blob"]:
                result, usage = pickle.loads(blob)
                add_usage(ledger, usage)
                on_batch(result)
                self._check_budget(ledger)

    def _check_budget(self, ledger: Ledger) -> None:
        """Stop (resumably) once the job's ``max_calls``/``max_cost`` is reached; batches still
        in flight may overshoot it, unlike the local engine, which checks before sending."""
        config = self.llm_config or LLMConfig()
        total = ledger.total()
        over_calls = config.max_calls is not None and total.calls >= config.max_calls
        over_cost = config.max_cost is not None and total.cost_usd >= config.max_cost
        if over_calls or over_cost:
            raise Budget(max_cost=config.max_cost, max_calls=config.max_calls).exceeded(ledger)

    def run_whole(self, stage: Stage, records: Sequence[Record]) -> StageResult | None:
        """A whole-set stage on the cluster when there is a sharded form of it (the exact
        novelty filter, :mod:`tunesmith.engines.ray_novelty`); None: run it in this process."""
        from tunesmith.filters.novelty_stage import NoveltyStage

        if isinstance(stage, NoveltyStage) and not stage.top_k:
            from tunesmith.engines.ray_novelty import novelty_on_ray

            return novelty_on_ray(stage, records, shards=self.workers)
        return None

    def peak_in_flight(self) -> int:
        """The most LLM requests the job ever had in flight at once (from the limiter)."""
        limiter, _ = self.services()
        return int(ray.get(limiter.stats.remote())["peak"])
