"""The Ray engine on a real local cluster (head + 2 worker nodes on 127.0.0.1) against the
OpenAI-format stub: same folder as the local engine, one global concurrency cap, exact ledger,
and resume after a killed worker or a killed driver without repeating a finished call."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

from tests.servers import StubOpenAIServer  # noqa: E402
from tunesmith.engines.ray_connect import LOOPBACK, is_loopback, loopback_only  # noqa: E402
from tunesmith.recipes import load_recipe, run_recipe  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
REPO = Path(__file__).resolve().parents[2]
CONCURRENCY = 3
TOPICS = ["rivers", "tea", "owls", "granite", "violins", "comets", "bread", "glaciers", "moss",
          "lanterns", "otters", "copper", "tides", "saffron", "kites", "basalt", "herons", "clay"]  # fmt: skip


def rows() -> list[dict[str, str]]:
    out = [{"instruction": f"Describe three facts about {t} for a curious student.", "input": "",
            "output": ""} for t in TOPICS]  # fmt: skip
    out.append(dict(out[0]))  # an exact duplicate: dedup removes it
    out.append({"instruction": "Hi", "input": "", "output": ""})  # too short: heuristics
    return out


RECIPE = """\
data: data.json
batch_size: 2
llm:
  backend: openai
  model: stub-model
  cache_path: {cache}
  options: {{base_url: "{url}/v1", concurrency: {conc}}}
stages:
  - heuristics: {{english_only: false, require_output: false, min_output_words: 0,
                  min_instruction_words: 2}}
  - dedup: {{threshold: 0.9}}
  - respond: {{max_tokens: 32}}
  - quality: {{}}
"""


def write_recipe(tmp: Path, name: str, url: str) -> Path:
    folder = tmp / name
    folder.mkdir()
    (folder / "data.json").write_text(json.dumps(rows()), encoding="utf-8")
    text = RECIPE.format(cache=folder / "cache.sqlite", url=url, conc=CONCURRENCY)
    (folder / "recipe.yaml").write_text(text, encoding="utf-8")
    return folder / "recipe.yaml"


@pytest.fixture(scope="module")
def cluster():
    """One real cluster for the module, on 127.0.0.1 only: a CPU-less head and 2 one-CPU workers."""
    loopback_only()
    c = cluster_utils.Cluster(initialize_head=True,
                              head_node_args={"num_cpus": 0, "include_dashboard": False})  # fmt: skip
    nodes = [c.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def test_cluster_talks_over_loopback_only(cluster):
    """Every node, and every socket of every Ray process (GCS, raylets, workers), is on 127/8."""
    c, _ = cluster
    assert c.address.startswith(f"{LOOPBACK}:")
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {LOOPBACK}
    ips = ray.get([ray.remote(num_cpus=1)(ray.util.get_node_ip_address).remote() for _ in range(4)])
    assert set(ips) == {LOOPBACK}
    procs = [psutil.Process(), *psutil.Process().children(recursive=True)]
    addrs = {
        a.ip
        for p in procs
        for conn in p.net_connections("inet")
        for a in (conn.laddr, conn.raddr)
        if a
    }
    assert len(procs) > 5 and addrs, "the cluster's processes were not found"
    assert all(ip.removeprefix("::ffff:").startswith("127.") for ip in addrs), addrs


def test_loopback_addresses():
    assert is_loopback(None) and is_loopback("127.0.0.1:6379") and is_loopback("localhost:6379")
    assert is_loopback("ray://127.0.0.1:10001") and is_loopback("[::1]:6379")
    assert not is_loopback("192.0.2.2:6379") and not is_loopback("auto")


def rows_by_id(path: Path) -> dict[str, Any]:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    out = {}
    for line in lines:
        row = json.loads(line)
        assert row["id"] not in out, f"duplicated row {row['id']} in {path}"
        out[row["id"]] = row
    return out


def folder_content(out: Path) -> dict[str, Any]:
    """What must not depend on the engine: rows (by id) of the run and of every stage."""
    content = {}
    for path in sorted(out.rglob("*.jsonl")):
        if path.name in ("kept.jsonl", "rejected.jsonl", "failed.jsonl"):
            content[str(path.relative_to(out))] = rows_by_id(path)
    return content


def usage(out: Path) -> dict[str, Any]:
    return json.loads((out / "ledger.json").read_text())["total"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The single-process run of the recipe, with the stub's log of its calls."""
    tmp = tmp_path_factory.mktemp("local")
    with StubOpenAIServer(delay=0.05) as stub:
        recipe = write_recipe(tmp, "local", stub.url)
        run_recipe(load_recipe(recipe), out=tmp / "run", report=False)
        calls = Counter(stub.answered)
    return folder_content(tmp / "run"), usage(tmp / "run"), calls


def test_ray_run_equals_local_run(cluster, reference, tmp_path):
    want, want_usage, want_calls = reference
    with StubOpenAIServer(delay=0.05) as stub:
        recipe = write_recipe(tmp_path, "ray", stub.url)
        run_recipe(load_recipe(recipe), out=tmp_path / "run", report=False, engine="ray")
        assert folder_content(tmp_path / "run") == want
        assert Counter(stub.answered) == want_calls  # the same calls, each once
        assert 1 < stub.max_in_flight <= CONCURRENCY  # one cap for the job, not per worker
        got = usage(tmp_path / "run")
        for key in ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd"):
            assert got[key] == want_usage[key], key
        # a rerun makes no call at all: everything is in the folder
        run_recipe(load_recipe(recipe), out=tmp_path / "run", report=False, engine="ray")
        assert Counter(stub.answered) == want_calls
        # a new folder makes none either: the workers wrote every answer to the shared cache
        run_recipe(load_recipe(recipe), out=tmp_path / "again", report=False, engine="ray")
        assert Counter(stub.answered) == want_calls
        assert folder_content(tmp_path / "again") == want
        assert usage(tmp_path / "again")["cache_hits"] == got["calls"] > 0


PEER: contextvars.ContextVar[tuple[str, int]] = contextvars.ContextVar("peer")


class HoldingStub(StubOpenAIServer):
    """The stub, holding requests until :meth:`release`, which drops them: a held request never
    reaches the server, so it is neither answered nor paid (a kill while requests are held is a
    kill with no answer in flight). Held: every request after the first ``hold_after``, or the
    first one whose body contains ``hold_text``; ``held_peers`` are their clients' addresses."""

    def __init__(
        self, hold_after: int | None = None, hold_text: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.hold_after, self.hold_text = hold_after, hold_text
        self.seen = 0
        self.held_peers: list[tuple[str, int]] = []
        self._gate: asyncio.Event | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        PEER.set(writer.get_extra_info("peername"))  # this connection's task only
        await super()._serve(reader, writer)

    async def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> bytes | None:
        self.seen += 1
        held = self.hold_after is not None and self.seen > self.hold_after
        if self.hold_text is not None and self.hold_text.encode() in body:
            held, self.hold_text = True, None
        if not held:
            return await super().handle(method, path, headers, body)
        self.held_peers.append(PEER.get())
        self._gate = self._gate or asyncio.Event()
        await self._gate.wait()
        return None

    @property
    def paid(self) -> int:
        return sum(self.answered.values())

    def release(self) -> None:
        self.hold_after = None
        if self._gate is not None:
            self._loop.call_soon_threadsafe(self._gate.set)


def client_pid(peer: tuple[str, int]) -> int | None:
    """The process whose TCP socket is ``peer``."""
    for pid in stage_worker_pids():
        with contextlib.suppress(psutil.Error):
            for conn in psutil.Process(pid).net_connections("tcp"):
                if conn.laddr and conn.laddr.port == peer[1]:
                    return pid
    return None


def usage_rows(cache: Path) -> int:
    """Usage rows the request cache holds (one per call paid, committed with its answer)."""
    if not cache.exists():
        return 0
    with sqlite3.connect(cache) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0])


def wait_for(cond: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def stage_worker_pids() -> list[int]:
    """The processes of the actor pool that runs LLM stages (``_ShardWorker``)."""
    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "_ShardWorker" in cmd or "MapWorker" in cmd:
            pids.append(proc.info["pid"])
    return pids


def assert_paid_once(stub: HoldingStub, want_calls: Counter[str], out: Path) -> None:
    """Every call made exactly once (none repeated), and the ledger counts the stub's log."""
    assert set(stub.answered) == set(want_calls)
    assert max(stub.answered.values()) == 1, "a completed call was sent again"
    assert usage(out)["calls"] == stub.paid, "the ledger must count every call the stub answered"


def test_worker_killed_mid_run(cluster, reference, tmp_path):
    """The stage worker holding the "moss" request SIGKILLed once every call that could be made
    is answered and committed, so it dies with calls of its shard (bread, glaciers) paid and
    the shard never merged: Ray reruns that shard,
    its paid calls come from the cache, and the ledger counts exactly what the stub answered
    (the dead worker's usage rows carry the run's ledger id, and the driver catches them up)."""
    want, _, want_calls = reference
    with HoldingStub(hold_text="about moss", delay=0.05) as stub:
        recipe = write_recipe(tmp_path, "ray", stub.url)
        cache = recipe.parent / "cache.sqlite"
        killed: list[int | None] = []

        def quiet() -> bool:
            """The request is held, and whatever else could run has run and been stored."""
            seen = stub.seen
            time.sleep(1.0)
            return (
                bool(stub.held_peers)
                and stub.seen == seen
                and stub.in_flight == 0
                and (usage_rows(cache) == stub.paid)
            )

        def kill() -> None:
            wait_for(quiet)
            pid = client_pid(stub.held_peers[0])
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            stub.release()

        watcher = threading.Thread(target=kill, daemon=True)
        watcher.start()
        run_recipe(load_recipe(recipe), out=tmp_path / "run", report=False, engine="ray")
        watcher.join()
        assert killed and killed[0] is not None, "the worker holding the request was not found"
        assert folder_content(tmp_path / "run") == want
        assert_paid_once(stub, want_calls, tmp_path / "run")
        # rerun: nothing left to do, nothing sent, the ledger unchanged
        run_recipe(load_recipe(recipe), out=tmp_path / "run", report=False, engine="ray")
        assert_paid_once(stub, want_calls, tmp_path / "run")
        assert not list((tmp_path / "run").rglob("staging")), "shards are removed when done"


def test_driver_killed_and_resumed(cluster, reference, tmp_path):
    """The CLI driver SIGKILLed after 8 answers, its workers with it, then the same command
    again: no lost or duplicated row, no call repeated, and the resumed ledger counts the calls
    paid after the last save (caught up from the cache's usage rows of this run)."""
    want, _, want_calls = reference
    c, _ = cluster
    with HoldingStub(hold_after=8, delay=0.05) as stub:
        recipe = write_recipe(tmp_path, "ray", stub.url)
        cache = recipe.parent / "cache.sqlite"
        cmd = [sys.executable, "-m", "tunesmith", "run", str(recipe), "--out",
               str(tmp_path / "run"), "--engine", "ray", "--ray-address", c.address]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: stub.paid == 8 and usage_rows(cache) == 8 and stub.seen > 8)
            workers = stage_worker_pids()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(60)
        # Ray reaps a dead driver's actors when it notices the driver is gone, not at once (slower
        # on a loaded machine); until then they retry their dropped requests. The rerun starts
        # after they are gone, as the README's resume note asks, so a repeat here is the engine's.
        wait_for(lambda: not set(workers) & set(stage_worker_pids()))
        stage = tmp_path / "run" / "stages" / "02-respond"
        assert list((stage / "staging" / "in").glob("*.parquet")), "input shards on disk"
        partial = len(rows_by_id(stage / "kept.jsonl"))
        assert partial < len(want["stages/02-respond/kept.jsonl"])  # the kill interrupted it
        stub.release()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert folder_content(tmp_path / "run") == want
        assert_paid_once(stub, want_calls, tmp_path / "run")
        assert not (stage / "staging").exists()


def test_finished_shards_are_merged_from_disk(cluster, tmp_path):
    """A resumed driver merges an output shard a worker finished for exactly the rows to do
    (here one planted by hand, so a rerun would show) and redoes one written for other rows."""
    from tunesmith import registry
    from tunesmith.engines.ray_engine import RayRunner
    from tunesmith.engines.shards import inputs_key, plan_shards, write_result
    from tunesmith.llm.usage import Ledger
    from tunesmith.records import Record
    from tunesmith.stages import StageResult

    records = [Record(id=f"r{i}", instruction=f"Describe {t} briefly.", output=f"{t} are fine.")
               for i, t in enumerate(TOPICS[:6])]  # fmt: skip
    spec = ("heuristics", {"english_only": False, "drop_duplicate_outputs": False})
    stage = registry.stages.get(spec[0])(**spec[1])
    staging = tmp_path / "staging"
    first, second, _ = plan_shards(records, 2, set(), staging)
    planted = StageResult(kept=[r.with_meta(planted=True) for r in first.rows])
    write_result(first.target, planted, inputs=inputs_key(first.rows), usage={})
    write_result(second.target, planted, inputs=inputs_key(first.rows), usage={})  # stale
    got: list[StageResult] = []
    RayRunner().run_stage(spec, stage, records, batch_size=2,
                          done_ids=set(), ledger=Ledger(), on_batch=got.append,
                          staging=staging)  # fmt: skip
    want = stage.run(records)
    assert [r.meta.get("planted") for res in got for r in res.kept] == [True] * 2 + [None] * 4
    assert [r.id for res in got for r in res.kept] == [r.id for r in want.kept]
    assert got[1].kept == want.kept[2:4] and not staging.exists()


def test_worker_that_cannot_see_the_run_folder_is_one_error(cluster, tmp_path):
    from tunesmith import registry
    from tunesmith.engines.ray_engine import RayRunner
    from tunesmith.engines.shards import plan_shards
    from tunesmith.errors import ConfigError
    from tunesmith.records import Record

    spec = ("heuristics", {"english_only": False, "drop_duplicate_outputs": False})
    stage = registry.stages.get(spec[0])(**spec[1])
    shards = plan_shards([Record(id="a", instruction="Name two rivers.")], 1, set(), tmp_path)
    with pytest.raises(ConfigError, match=r"not on node 127\.0\.0\.1; .* storage every node sees"):
        list(RayRunner()._map(spec, stage, shards, "run"))  # its input shard was never written


def near_duplicates(n: int) -> list[Any]:
    """Short instructions from a few verbs and many words: some pairs near any threshold."""
    import random

    from tunesmith.records import Record

    rng = random.Random(7)
    verbs = ["Describe", "Explain", "List", "Summarize", "Compare"]
    words = ["rivers", "tea", "owls", "granite", "violins", "comets", "bread", "moss", "lanterns", "otters", "copper", "tides", "saffron", "kites", "basalt", "herons", "clay", "maple", "frost", "ink"]  # fmt: skip
    out = []
    for i in range(n):
        text = " ".join([rng.choice(verbs), *rng.sample(words, rng.randint(2, 5))])
        out.append(Record(id=f"r{i}", instruction=text))
    return out


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.85])
def test_exact_novelty_on_shards_equals_single_process(cluster, threshold):
    from tunesmith.engines.ray_novelty import novelty_on_ray
    from tunesmith.filters.novelty_stage import NoveltyStage

    records = near_duplicates(160)
    pool = ["Describe owls tea moss"]
    want = NoveltyStage(threshold=threshold, pool=pool).run(records)
    got = novelty_on_ray(NoveltyStage(threshold=threshold, pool=pool), records, shards=2, chunk=16)
    assert 0 < len(want.kept) < len(records)
    assert got.kept == want.kept  # same rows, same rouge_l_max, in the same order
    assert got.rejected == want.rejected  # same scores and nearest ids in the reasons


def test_minhash_novelty_under_ray_runs_the_approximate_filter(cluster):
    """`mode: minhash` is honoured on Ray (not silently replaced by the exact sharded filter):
    the runner leaves it to the driver, whose result is the single-process minhash result."""
    from tunesmith.engines.ray_engine import RayRunner
    from tunesmith.filters.novelty_stage import NoveltyStage

    runner = RayRunner()
    records = near_duplicates(120)
    assert runner.run_whole(NoveltyStage(threshold=0.7, mode="minhash"), records) is None
    exact = runner.run_whole(NoveltyStage(threshold=0.7), records)
    assert exact is not None and exact == NoveltyStage(threshold=0.7).run(records)


def with_budget(recipe: Path, **limits: Any) -> None:
    """Set the recipe's ``llm`` budget (``max_calls``/``max_cost``/``prices_path``) in place."""
    head, tail = recipe.read_text(encoding="utf-8").split("  model: stub-model\n")
    lines = "".join(f"  {k}: {v}\n" for k, v in limits.items() if v is not None)
    recipe.write_text(f"{head}  model: stub-model\n{lines}{tail}", encoding="utf-8")


@pytest.mark.parametrize("stops", [[{"max_calls": 7}, {"max_calls": 25}], [{"max_cost": 0.2}]])
def test_budget_holds_for_the_whole_job(cluster, reference, tmp_path, stops):
    """``max_calls``/``max_cost`` are admitted per request by the job's limiter: the stub answers
    exactly N (resp. bills at most X), the run stops resumably, a rerun with a larger budget
    counts the calls already paid (25 = 7 + 18 more), and a last one finishes paying each once."""
    from tunesmith.errors import BudgetExceeded

    want, _, want_calls = reference
    prices = tmp_path / "prices.yaml"
    prices.write_text("stub-model: {input: 1000, output: 1000}\n")  # a stub call: $0.01
    out = tmp_path / "run"
    with HoldingStub(delay=0.05) as stub:
        recipe = write_recipe(tmp_path, "ray", stub.url)
        text = recipe.read_text(encoding="utf-8")
        for limits in stops:
            recipe.write_text(text, encoding="utf-8")
            with_budget(recipe, prices_path=prices, **limits)
            with pytest.raises(BudgetExceeded):
                run_recipe(load_recipe(recipe), out=out, report=False, engine="ray")
            assert json.loads((out / "manifest.json").read_text())["status"] == "stopped (budget)"
            assert max(stub.answered.values()) == 1, "a paid call was sent again"
            for name, got in folder_content(out).items():  # no refused row lands anywhere
                assert all(want[name].get(i) == row for i, row in got.items()), name
            if "max_calls" in limits:
                assert stub.paid == usage(out)["calls"] == limits["max_calls"]
            else:
                assert 0 < stub.paid * 0.01 <= limits["max_cost"]
                assert usage(out)["cost_usd"] == pytest.approx(stub.paid * 0.01)
        recipe.write_text(text, encoding="utf-8")
        run_recipe(load_recipe(recipe), out=out, report=False, engine="ray")
        assert folder_content(out) == want
        assert_paid_once(stub, want_calls, out)


def test_limiter_budget_waits_for_answers_and_counts_dead_leases(cluster):
    """A request that fits only once a reservation in flight is billed below it waits; a lease
    its worker stopped renewing (killed) counts as spent at its reservation: never overspent."""
    from tunesmith.engines.ray_llm import Limiter

    limiter = Limiter.remote(4, None, None, ttl=1.0, max_calls=3)  # type: ignore[attr-defined]
    first = ray.get(limiter.acquire.remote(1, 2))  # 2 calls reserved
    waiting = limiter.acquire.remote(1, 2)  # 2 + 2 > 3, but 0 spent + 2 fits: it waits
    time.sleep(0.3)
    ray.get(limiter.release.remote(first, 1))  # billed 1 call of the 2 reserved
    assert ray.get(waiting) > 0  # 1 spent + 2 reserved = 3
    time.sleep(1.2)  # its worker died: the lease expires, its 2 calls count as spent
    assert ray.get(limiter.acquire.remote(1, 1)) == 0
    assert ray.get(limiter.stats.remote())["spent_calls"] == 3
