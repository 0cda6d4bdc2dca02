"""eval compare end to end on the fake backend: both orders sent, verdicts combined, resume pays
nothing twice, noisy labels never reach the cache, rows that do not align are named."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.errors import DataError
from tunesmith.judge.evaluate import read_pairs, run_compare
from tunesmith.judge.pool import Annotator, Pool
from tunesmith.judge.spec import load_judge
from tunesmith.judge.store import read_rows
from tunesmith.llm.base import Request
from tunesmith.llm.factory import LLMConfig

INSTR = [f"Question {i}?" for i in range(6)]


def _write(path: Path, outputs: list[str], generator: str) -> Path:
    rows = [{"instruction": q, "output": o, "generator": generator, "dataset": "set" + str(i % 2)}
            for i, (q, o) in enumerate(zip(INSTR, outputs, strict=True))]  # fmt: skip
    path.write_text(json.dumps(rows))
    return path


def judge_says_long_wins(request: Request, _: int) -> str:
    """A scripted judge: the longer reply wins, except a tie for question 5; question 4's first
    order is answered with prose only (unreadable)."""
    text = request.messages[-1]["content"]
    a = text.split("[Reply A]\n")[1].split("\n[End of reply A]")[0]
    b = text.split("[Reply B]\n")[1].split("\n[End of reply B]")[0]
    if "Question 5?" in text:
        return "Equal.\n[[tie]]"
    if "Question 4?" in text and a.startswith("long"):
        return "I cannot decide."
    return "Longer is better.\n[[A]]" if len(a) > len(b) else "[[B]]"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    model = _write(
        tmp_path / "model.json", ["long answer"] * 3 + ["x"] * 1 + ["long answer"] * 2, "mine"
    )
    base = _write(tmp_path / "base.json", ["short"] * 6, "base")
    return model, base


def _fake(responses=judge_says_long_wins):  # type: ignore[no-untyped-def]
    def config_for(b, m, o):  # type: ignore[no-untyped-def]
        return LLMConfig(backend="fake", model="judge-model")

    import tunesmith.llm.fake as fake

    fake_backend = fake.FakeBackend(model="judge-model", responses=responses)
    return config_for, fake_backend


def test_compare_both_orders_rules_and_summary(files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config_for, backend = _fake()
    pairs = read_pairs(*files)
    summary = run_compare(pairs, judge=load_judge("pairwise_both_orders"), out=tmp_path / "run",
                          config_for=config_for, backend=backend)  # fmt: skip
    # q0-2: model longer, both orders agree -> win; q3: model "x" shorter -> lose both -> lose;
    # q4: one order unreadable -> failed; q5: tie both -> tie.
    assert (summary["wins"], summary["losses"], summary["ties"], summary["failed"]) == (3, 1, 1, 1)
    assert summary["win_rate"] == pytest.approx((3 * 1 + 0 + 0.5) / 5 * 100)
    assert backend.calls == 12  # both orders for every pair
    orders = {(r.messages[-1]["content"].index("long") < r.messages[-1]["content"].index("short"))
              for r in backend.requests if "Question 0?" in r.messages[-1]["content"]}  # fmt: skip
    assert orders == {True, False}  # the model was shown first once and second once
    assert summary["per_category"]["set0"]["n"] + summary["per_category"]["set1"]["n"] == 5
    assert summary["position_bias"]["order_disagreement_rate"] == 0.0
    assert summary["excerpts"] and summary["lc_win_rate"] is not None
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["win_rate"] == summary["win_rate"]


def test_resume_pays_nothing_twice(files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config_for, backend = _fake()
    pairs = read_pairs(*files)
    spec = load_judge("pairwise_both_orders")
    first = run_compare(pairs, judge=spec, out=tmp_path / "run", config_for=config_for,
                        batch_size=2, backend=backend)  # fmt: skip
    assert backend.calls == 12  # both orders of 6 pairs
    # a kill after the calls were answered but before the last batch's rows were written
    kept = tmp_path / "run" / "kept.jsonl"
    kept.write_text("".join(kept.read_text().splitlines(keepends=True)[:3]))
    again = run_compare(pairs, judge=spec, out=tmp_path / "run", config_for=config_for,
                        batch_size=2, backend=backend)  # fmt: skip
    assert backend.calls == 12 and again["win_rate"] == first["win_rate"]
    assert sorted(r["id"] for r in read_rows(tmp_path / "run")) == sorted(p.id for p in pairs)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["resumed"] == 1 and manifest["status"] == "done"
    # a fresh folder replays every call from the request cache
    run_compare(pairs, judge=spec, out=tmp_path / "run2", config_for=config_for, backend=backend)
    assert backend.calls == 12
    ledger = json.loads((tmp_path / "run2" / "ledger.json").read_text())
    assert ledger["total"]["cache_hits"] == 12 and ledger["total"]["calls"] == 0


def test_noisy_labels_never_reach_the_cache(files, tmp_path, _isolated_cache) -> None:  # type: ignore[no-untyped-def]
    config_for, backend = _fake()
    spec = load_judge("pairwise_both_orders")
    pool = Pool((Annotator("a", spec), Annotator("b", spec)), label_noise=0.5, seed=3)
    pairs = read_pairs(*files)
    summary = run_compare(
        pairs, judge=pool, out=tmp_path / "noisy", config_for=config_for, backend=backend
    )
    rows = read_rows(tmp_path / "noisy")
    assert summary["label_noise"]["replaced"] == sum(bool(r.get("noisy")) for r in rows) > 0
    assert {r["annotator"] for r in rows} <= {"a", "b"}
    # the cache holds exactly the judge's replies, which parse to the clean labels
    with sqlite3.connect(_isolated_cache) as db:
        tables = [t for (t,) in db.execute("select name from sqlite_master where type='table'")]
        blobs = [str(v) for t in tables for row in db.execute(f"select * from {t}") for v in row]
    cached = "\n".join(blobs)
    expected = {judge_says_long_wins(r, 0) for r in backend.requests}
    assert all(json.dumps(t)[1:-1] in cached or t in cached for t in expected)
    assert backend.calls == 12
    # without noise the same pool replays from the cache and gives the clean labels
    clean = Pool(pool.annotators, label_noise=0.0, seed=3)
    out = run_compare(
        pairs, judge=clean, out=tmp_path / "clean", config_for=config_for, backend=backend
    )
    assert backend.calls == 12
    assert out["win_rate"] == summary["label_noise"]["clean_win_rate"]
    # the noisy pool agrees with its own clean labels exactly where the coin did not replace them
    from tunesmith.judge.evaluate import agreement_between

    agree = agreement_between(tmp_path / "noisy", tmp_path / "clean")
    changed = sum(
        r["preference"] != r["clean_preference"] for r in rows if r["preference"] is not None
    )
    assert agree["n"] == summary["n"] and agree["agreement"] == pytest.approx(
        1 - changed / agree["n"]
    )


def test_budget_stop_then_resume_with_a_bigger_budget(files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tunesmith.errors import BudgetExceeded
    from tunesmith.llm.fake import FakeBackend

    backend = FakeBackend(model="judge-model", responses=judge_says_long_wins)
    pairs = read_pairs(*files)
    spec = load_judge("pairwise_both_orders")

    def capped(n):  # type: ignore[no-untyped-def]
        return lambda b, m, o: LLMConfig(backend="fake", model="judge-model", max_calls=n)

    with pytest.raises(BudgetExceeded):
        run_compare(pairs, judge=spec, out=tmp_path / "b", config_for=capped(5), batch_size=2,
                    backend=backend)  # fmt: skip
    assert backend.calls == 5  # the calls that fit were made (and cached)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["status"] == "stopped (budget)"
    assert len(read_rows(tmp_path / "b")) == 2
    summary = run_compare(pairs, judge=spec, out=tmp_path / "b", config_for=capped(100),
                          batch_size=2, backend=backend)  # fmt: skip
    assert backend.calls == 12  # the 5 paid calls replayed from the cache
    assert summary["n"] + summary["failed"] == 6


def test_rows_that_do_not_align_are_named(tmp_path: Path) -> None:
    model = _write(tmp_path / "m.json", ["a"] * 6, "m")
    rows = json.loads(model.read_text())
    rows[2]["instruction"] = "Something else?"
    (tmp_path / "b.json").write_text(json.dumps(rows))
    with pytest.raises(
        DataError, match=r"m\.json:3: instruction 'Question 2\?' is not in .*b\.json"
    ):
        read_pairs(tmp_path / "m.json", tmp_path / "b.json")


def test_cli_compare_offline_with_fake_backend_and_leaderboard(files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(app, ["eval", "compare", str(files[0]), str(files[1]), "--out", str(out),
                              "--judge", "single_grade", "--backend", "fake"])  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["judge"] == "single_grade" and summary["n"] + summary["failed"] == 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["judging"]["annotators"]["single_grade"]["backend"] == "fake"
    assert manifest["config"]["settings"]["llm"]["single_grade"]["backend"] == "fake"
    page = tmp_path / "board.html"
    res = runner.invoke(app, ["eval", "leaderboard", str(out), "--out", str(page)])
    assert res.exit_code == 0, res.output
    assert "single_grade" in page.read_text()
    # a different judge into the same folder is refused, not mixed in
    res = runner.invoke(app, ["eval", "compare", str(files[0]), str(files[1]), "--out", str(out),
                              "--judge", "pairwise_both_orders", "--backend", "fake"])  # fmt: skip
    assert res.exit_code != 0 and "different 'judging.annotators" in str(res.exception)


def test_single_grade_sees_mt_bench_reference_answers(tmp_path: Path) -> None:
    from tunesmith.llm.fake import FakeBackend

    qs = [{"question_id": 101, "turns": ["What is 2+2?"], "category": "math"}]
    (tmp_path / "m.jsonl").write_text(json.dumps({**qs[0], "output": "4", "generator": "m"}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({**qs[0], "output": "5", "generator": "b"}) + "\n")
    (tmp_path / "ref.jsonl").write_text(json.dumps(
        {"question_id": 101, "model_id": "gpt-4", "choices": [{"index": 0, "turns": ["2+2 = 4"]}]}
    ) + "\n")  # fmt: skip
    pairs = read_pairs(tmp_path / "m.jsonl", tmp_path / "b.jsonl", tmp_path / "ref.jsonl")
    assert pairs[0].reference == "2+2 = 4" and pairs[0].category == "math"

    def grader(request: Request, _: int) -> str:
        text = request.messages[-1]["content"]
        assert "2+2 = 4" in text  # the reference reached the prompt
        return "Rating: [[9]]" if "answer]\n4\n" in text else "Rating: [[2.5]]"

    backend = FakeBackend(model="judge-model", responses=grader)
    summary = run_compare(pairs, judge=load_judge("single_grade"), out=tmp_path / "g",
                          config_for=lambda b, m, o: LLMConfig(backend="fake", model="judge-model"),
                          backend=backend)  # fmt: skip
    assert summary["wins"] == 1 and backend.calls == 2
    [row] = read_rows(tmp_path / "g")
    assert sorted(c["scores"][0] for c in row["calls"]) == [2.5, 9.0]


def test_cli_pool_and_agreement(files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "pool.yaml").write_text(
        "label_noise: 0.25\nseed: 1\nannotators:\n"
        "  - {judge: pairwise_both_orders, name: cold, temperature: 0}\n"
        "  - {judge: score_pair_both_orders, name: warm, temperature: 1.0}\n"
    )
    runner = CliRunner()
    common = ["--backend", "fake"]
    res = runner.invoke(app, ["eval", "compare", str(files[0]), str(files[1]), "--out",
                              str(tmp_path / "pool"), "--pool", str(tmp_path / "pool.yaml"), *common])  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = read_rows(tmp_path / "pool")
    assert {r["annotator"] for r in rows} <= {"cold", "warm"} and len(rows) == 6
    summary = json.loads((tmp_path / "pool" / "summary.json").read_text())
    assert set(summary["per_annotator"]) == {r["annotator"] for r in rows}
    manifest = json.loads((tmp_path / "pool" / "manifest.json").read_text())
    assert manifest["config"]["judging"]["label_noise"] == 0.25
    res = runner.invoke(app, ["eval", "compare", str(files[0]), str(files[1]), "--out",
                              str(tmp_path / "ref"), "--judge", "pairwise_both_orders", *common])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["eval", "agreement", str(tmp_path / "pool"), str(tmp_path / "ref")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["n"] >= 0 and "agreement" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("annotators:\n  - {judge: pairwise_both_orders, temprature: 1}\n")
    res = runner.invoke(app, ["eval", "compare", str(files[0]), str(files[1]), "--out",
                              str(tmp_path / "x"), "--pool", str(bad), *common])  # fmt: skip
    assert res.exit_code != 0 and "unknown key 'temprature'" in str(res.exception)


def test_refused_requests_become_failed_rows_and_are_retried_on_request(files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A judge request the server refuses for good (HTTP 4xx: Completion.error) is a failed row:
    skipped on resume, sent again with retry_failed."""
    from tunesmith.llm.base import Backend, Completion

    class Refusing(Backend):
        name = "fake"
        refuse = True
        calls = 0

        def complete(self, requests, on_done):  # type: ignore[no-untyped-def]
            for i, req in enumerate(requests):
                self.calls += 1
                c = Completion(text=judge_says_long_wins(req, 0))
                if self.refuse and "Question 1?" in req.messages[-1]["content"]:
                    c = Completion(text="")
                    c.error, c.error_status = "content filter", 400  # type: ignore[attr-defined]
                on_done(i, [c])

    backend = Refusing("judge-model")
    pairs = read_pairs(*files)
    spec = load_judge("pairwise_both_orders")
    cfg = lambda b, m, o: LLMConfig(backend="fake", model="judge-model", use_cache=False)  # noqa: E731
    run_compare(pairs, judge=spec, out=tmp_path / "f", config_for=cfg, backend=backend)
    failed = [json.loads(x) for x in (tmp_path / "f" / "failed.jsonl").read_text().splitlines()]
    assert (
        len(failed) == 1 and failed[0]["status"] == 400 and "content filter" in failed[0]["message"]
    )
    assert len(read_rows(tmp_path / "f")) == 5
    calls = backend.calls
    run_compare(pairs, judge=spec, out=tmp_path / "f", config_for=cfg, backend=backend)
    assert backend.calls == calls  # skipped on resume
    backend.refuse = False
    summary = run_compare(pairs, judge=spec, out=tmp_path / "f", config_for=cfg, backend=backend,
                          retry_failed=True)  # fmt: skip
    assert backend.calls == calls + 2 and len(read_rows(tmp_path / "f")) == 6
    assert summary["n"] + summary["failed"] == 6


def test_identical_outputs_tie_without_a_call_and_orders_are_seeded() -> None:
    from tunesmith.judge.pairwise import Pair, judge_pairs, model_is_second
    from tunesmith.llm.client import LLM
    from tunesmith.llm.fake import FakeBackend

    backend = FakeBackend(responses=["M"])
    same = Pair(key="k", instruction="Q?", input="", model_output="same ", baseline_output="same",
                generator="m", baseline="b")  # fmt: skip
    [row] = judge_pairs(load_judge("preference_logprob"), LLM(backend), [same])
    assert row["preference"] == 1.5 and row["calls"] == [] and backend.calls == 0
    spec = load_judge("preference_logprob")
    pairs = [dataclasses.replace(same, instruction=f"Q{i}?", key=str(i)) for i in range(400)]
    orders = [model_is_second(spec, p, seed=0)[0] for p in pairs]
    assert 150 < sum(orders) < 250  # about half the pairs show the model first
    assert orders == [model_is_second(spec, p, seed=0)[0] for p in pairs]  # seeded: stable
    assert orders != [model_is_second(spec, p, seed=1)[0] for p in pairs]
