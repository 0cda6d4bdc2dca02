"""Evaluation against the REAL llama.cpp server (``python -m llama_cpp.server`` serving the
embedded SmolLM2) behind a counting proxy: two outputs files made by ``eval generate``, judged in
both orders, the judging CLI SIGKILLed and rerun (nothing paid twice), the log-prob judge reading
real top log-probs, and the leaderboard page opened in Chromium.

SmolLM2-135M cannot judge (chance level, position bias): these tests prove the plumbing, not
the verdicts; the rules and the statistics are proven on exact values in the unit tests."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import REPO, FaultProxy, LlamaServer
from tunesmith.judge.store import read_rows
from tunesmith.llm.base import Request, SamplingParams
from tunesmith.llm.client import LLM
from tunesmith.llm.embedded import EmbeddedBackend
from tunesmith.llm.models import embedded_gguf_path
from tunesmith.llm.openai_compat import OpenAICompatBackend

if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("fastapi") is None:
    pytest.skip("llama-cpp-python[server] is not installed", allow_module_level=True)
pytestmark = pytest.mark.integration

MODEL = "smollm2-135m-instruct"
N = 4
HOSTILE = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture(scope="module")
def server() -> Iterator[LlamaServer]:
    with LlamaServer(embedded_gguf_path()) as srv:
        yield srv


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src")
    env.pop("OPENAI_API_KEY", None)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunesmith", "eval", *args]


def _llm_args(url: str) -> list[str]:
    return ["--backend", "openai", "--base-url", url, "--model", MODEL, "--concurrency", "1",
            "-O", "backoff_base=0.2"]  # fmt: skip


def _run(cmd: list[str], timeout: float = 400) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


SHORT_PROMPT = """Question: {{ instruction }}

Reply {{ id_1 }}: {{ output_1 }}

Reply {{ id_2 }}: {{ output_2 }}

Which reply answers the question better? Write your choice as [[{{ id_1 }}]] or [[{{ id_2 }}]]."""


def _short_judge(folder: Path, name: str, max_tokens: int) -> Path:
    """A user judge (two files, no Python) with a terse prompt and a short reply cap, so the 135M
    model answers in seconds on one CPU thread and sometimes in a readable form."""
    (folder / f"{name}.j2").write_text(SHORT_PROMPT)
    (folder / f"{name}.yaml").write_text(
        f"prompt: {name}.j2\nparser: verdict\nrule: mt_bench\nboth_orders: true\n"
        f"sampling: {{temperature: 0, max_tokens: {max_tokens}}}\n"
    )
    return folder / f"{name}.yaml"


@pytest.fixture(scope="module")
def outputs(server: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two models' outputs for a tiny set (one instruction carries HTML a page must escape)."""
    tmp = tmp_path_factory.mktemp("evalgen")
    evalset = tmp / "questions.jsonl"
    qs = ["Name a fruit.", "What colour is the sky?", "Say hello.", f"Repeat this: {HOSTILE}"]
    evalset.write_text("".join(
        json.dumps({"question_id": i, "turns": [q], "category": "c" + str(i % 2)}) + "\n"
        for i, q in enumerate(qs)
    ))  # fmt: skip
    made = []
    for name, max_tokens in (("long", "24"), ("short", "4")):
        out = tmp / name
        _run(_cli("generate", str(evalset), "--out", str(out), "--name", name,
                  "--max-tokens", max_tokens, "--temperature", "0", *_llm_args(server.url)))  # fmt: skip
        rows = json.loads((out / "outputs.json").read_text())
        assert [r["instruction"] for r in rows] == qs and all(r["generator"] == name for r in rows)
        assert [r["dataset"] for r in rows] == ["c0", "c1", "c0", "c1"]
        made.append(out / "outputs.json")
    return made[0], made[1]


def test_top_logprobs_equal_between_embedded_and_server(server: LlamaServer) -> None:
    req = Request.chat(
        [{"role": "user", "content": "Reply with one letter, m or M."}],
        SamplingParams(temperature=0, max_tokens=1, top_logprobs=5),
    )
    [[local]] = LLM(EmbeddedBackend()).complete([req])
    [[remote]] = LLM(OpenAICompatBackend(MODEL, base_url=server.url)).complete([req])
    assert local.top_logprobs and remote.top_logprobs
    assert list(local.top_logprobs[0]) == list(remote.top_logprobs[0])
    for token, lp in local.top_logprobs[0].items():
        assert remote.top_logprobs[0][token] == pytest.approx(lp, abs=1e-4)


def test_compare_both_orders_killed_and_resumed(
    server: LlamaServer, outputs: tuple[Path, Path], tmp_path: Path
) -> None:
    judge = _short_judge(tmp_path, "short_pairwise", 40)
    run = tmp_path / "cmp"
    cmd = _cli("compare", str(outputs[0]), str(outputs[1]), "--out", str(run), "--judge",
               str(judge), "--batch-size", "1", *_llm_args("URL"))  # fmt: skip
    with FaultProxy(server.url) as proxy:
        cmd[cmd.index("URL")] = proxy.url
        proc = subprocess.Popen(
            cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait(lambda: sum(proxy.answered.values()) >= 3, 300)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        before = sum(proxy.answered.values())
        assert before < 2 * N, "killed mid-run"
        done = _run(cmd)
        assert "win rate" in done.stdout
        # both orders of every pair reached the server; a completed call was never repeated
        # (only the one in flight at the kill may have been answered twice)
        assert len(proxy.answered) == 2 * N
        assert sum(proxy.answered.values()) <= 2 * N + 1
    rows = read_rows(run)
    assert len(rows) == N and len({r["id"] for r in rows}) == N
    for r in rows:
        assert [c["model_is_second"] for c in r["calls"]] == [True, False]
        assert r["preference"] is not None or r["failed"].startswith("parse failure")
    # real replies were read: some verdicts parsed (greedy decoding makes this repeatable)
    assert any(c["pref_second"] is not None for r in rows for c in r["calls"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n"] + summary["failed"] == N
    assert summary["generator"] == "long" and summary["baseline"] == "short"
    assert summary["position_bias"]["calls"] == sum(
        c["pref_second"] is not None for r in rows for c in r["calls"]
    )
    ledger = json.loads((run / "ledger.json").read_text())
    assert ledger["total"]["calls"] + ledger["total"]["cache_hits"] >= 2 * N


def test_logprob_judge_reads_real_top_logprobs(
    server: LlamaServer, outputs: tuple[Path, Path], tmp_path: Path
) -> None:
    bodies: list[dict[str, Any]] = []

    def spy(body: dict[str, Any], _: int) -> None:
        bodies.append(body)
        return None

    with FaultProxy(server.url, fault=spy) as proxy:
        _run(_cli("compare", str(outputs[0]), str(outputs[1]), "--out", str(tmp_path / "lp"),
                  "--judge", "preference_logprob", *_llm_args(proxy.url)))  # fmt: skip
    assert len(bodies) == N  # one randomized order per pair
    assert all(b["top_logprobs"] == 5 and b["max_tokens"] == 1 for b in bodies)
    rows = read_rows(tmp_path / "lp")
    from_logprobs = [r for r in rows if r["calls"][0]["scores"]]
    for r in from_logprobs:  # continuous preference = 2 - P(first) / (P(first) + P(second))
        p1, p2 = r["calls"][0]["scores"]
        expect = 2 - p1 / (p1 + p2)
        pref = expect if r["calls"][0]["model_is_second"] else 3 - expect
        assert r["preference"] == pytest.approx(pref)
    assert {r["calls"][0]["model_is_second"] for r in rows} <= {True, False}


def test_leaderboard_page_in_chromium(
    server: LlamaServer, outputs: tuple[Path, Path], tmp_path: Path
) -> None:
    from tests.report.cdp import Browser

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (make browser)")
    judge = _short_judge(tmp_path, "tiny_pairwise", 24)
    folders = []
    for a, b in ((0, 1), (1, 0)):
        run = tmp_path / f"cmp{a}"
        _run(_cli("compare", str(outputs[a]), str(outputs[b]), "--out", str(run),
                  "--judge", str(judge), *_llm_args(server.url)))  # fmt: skip
        folders.append(str(run))
    page = tmp_path / "board.html"
    _run(_cli("leaderboard", *folders, "--out", str(page)))
    with Browser(chromium) as browser:
        browser.goto(page.resolve().as_uri())
        browser.wait_for("document.readyState === 'complete'")
        assert browser.eval("document.querySelectorAll('#leaderboard tr.entry').length") == 2
        names = browser.eval(
            "[...document.querySelectorAll('#leaderboard tr.entry td:first-child')]"
            ".map(td => td.textContent).sort().join(',')"
        )
        assert names == "long,short"
        assert browser.eval("document.querySelectorAll('details.pairs .pair').length") == 2 * N
        # models x judges: two models, one judge column per baseline
        assert browser.eval("document.querySelectorAll('#matrix tr').length") == 3
        # the hostile instruction is shown as text, never run
        browser.eval("document.querySelectorAll('details.pairs').forEach(d => d.open = true)")
        browser.drain(0.5)
        assert browser.eval("window.__pwned === undefined")
        assert browser.eval(
            f"[...document.querySelectorAll('pre.instruction')].some(p => p.textContent.includes({json.dumps(HOSTILE)}))"
        )
        assert browser.eval("document.querySelectorAll('pre img').length") == 0
        assert not browser.console_errors and not browser.dialogs


def _wait(cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)
