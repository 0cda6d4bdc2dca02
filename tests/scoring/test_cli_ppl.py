"""`tunesmith score ppl` end to end: the CLI in a subprocess on the embedded model, its numbers
checked against a direct computation on both runtimes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.llm.logprob_helpers import direct_ppl

ROWS = [
    {"instruction": "Name three primary colors.", "input": "", "output": "Red, blue and yellow."},
    {"instruction": "Translate the word to French.", "input": "cat", "output": "chat"},
    {"instruction": "colorless green ideas sleep furiously", "input": "", "output": "Yes."},
]


def score_ppl(data: Path, out: Path, *args: str) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "tunesmith", "score", "ppl", str(data), "--out", str(out), *args],
        capture_output=True, text=True, env=os.environ.copy(), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "kept " in result.stdout and "(scores under 'ppl" in result.stdout
    assert "Traceback" not in result.stderr
    assert "Loading weights" not in result.stderr, "the model load's progress bar leaked"
    assert (out / "report.html").is_file()
    rows = [json.loads(x) for x in (out / "kept.jsonl").read_text("utf-8").splitlines()]
    rejected = out / "rejected.jsonl"
    if rejected.exists():
        rows += [json.loads(x) for x in rejected.read_text("utf-8").splitlines()]
    return sorted(rows, key=lambda r: [x["instruction"] for x in ROWS].index(r["instruction"]))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


@pytest.mark.integration
def test_score_ppl_transformers_equals_direct_computation(data: Path, tmp_path: Path) -> None:
    rows = score_ppl(data, tmp_path / "ppl")
    got = [r["scores"]["ppl"] for r in rows]
    assert got == pytest.approx([direct_ppl("", r["instruction"]) for r in ROWS], rel=1e-4)
    manifest = json.loads((tmp_path / "ppl" / "manifest.json").read_text())
    assert manifest["config"]["runtime"] == "transformers"
    # an empty field has no perplexity: rejected with the reason, never scored 0
    rows = score_ppl(data, tmp_path / "input", "--field", "input")
    assert rows[1]["scores"]["ppl_input"] == pytest.approx(direct_ppl("", "cat"), rel=1e-4)
    for row in (rows[0], rows[2]):
        assert row["scores"]["ppl_input"] is None
        assert row["reason"] == "no ppl_input score (empty text)"


def llama_cpp_ppl(text: str) -> float:
    """exp(mean NLL) of the text's tokens after <|endoftext|>, straight from llama.cpp logits."""
    import llama_cpp

    from tunesmith.llm.models import embedded_gguf_path

    llm = llama_cpp.Llama(str(embedded_gguf_path()), n_ctx=256, logits_all=True, verbose=False)
    ids = [*llm.tokenize(b"<|endoftext|>", add_bos=False, special=True)]
    ids += llm.tokenize(text.encode(), add_bos=False, special=True)
    llm.eval(ids)
    logits = np.asarray(llm.scores[: len(ids) - 1], dtype=np.float64)
    logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    nll = -np.mean(logits[np.arange(len(ids) - 1), ids[1:]] - logz)
    llm.close()
    return math.exp(nll)


@pytest.mark.integration
def test_score_ppl_llama_cpp_equals_direct_computation(data: Path, tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    rows = score_ppl(data, tmp_path / "gguf", "--runtime", "llama-cpp")
    want = [llama_cpp_ppl(r["instruction"]) for r in ROWS]
    assert [r["scores"]["ppl"] for r in rows] == pytest.approx(want, rel=1e-3)
