"""The log-prob interface: Cherry LLM's tokenization rule, missing scores, both runtimes, and
equality with Cherry's published computation on real Alpaca rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.llm.logprob_helpers import CharModel, cherry_nll, direct_ppl, encode, scorer
from tunesmith.llm.logprob import TextScore, make_logprob_model

PREFIX = "### Instruction:\nName three primary colors.\n\n### Response:\n"
CASES = [
    (PREFIX, "Red, blue and yellow."),
    ("", "Red, blue and yellow."),
    ("", "The quick brown fox jumps over the lazy dog near the river bank at dawn."),
    ("Translate to French: cat\n", "chat"),
    ("", "asdf qwer zxcv"),
]


def test_text_score_is_missing_never_zero() -> None:
    s = TextScore.from_logprobs(np.log(np.array([0.5, 0.25])))
    assert s.nll == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2) and s.tokens == 2
    assert s.ppl == pytest.approx(math.exp(s.nll))
    empty = TextScore.from_logprobs(np.zeros(0))
    assert empty.missing and empty.ppl is None and empty.nll is None and empty.reason


def test_rule_masks_the_prompt_and_truncates_like_cherry() -> None:
    lm = CharModel(max_length=16)
    span = lm.span("ab", "cdef")
    assert span.ids == [0, 97, 98, 99, 100, 101, 102] and span.start == 3 and span.n_scored == 4
    long = lm.span("abcd", "x" * 40)  # cut on the right to the window
    assert len(long.ids) == 16 and long.start == 5 and long.n_scored == 11
    assert lm.span("", "hi").start == 1  # the first token is scored after the start token


def test_nothing_to_score_is_missing_with_a_reason() -> None:
    lm = CharModel(max_length=16)
    empty, full, ok = lm.score_continuation(["q", "p" * 20, ""], ["", "answer", "hi"])
    assert empty.missing and empty.reason == "empty text"
    assert full.missing and "fills the 16-token window" in str(full.reason)
    assert ok.nll == pytest.approx(1.0) and ok.tokens == 2
    assert [len(s.ids) for s in lm.seen] == [3]  # the missing ones never reach the model
    with pytest.raises(ValueError):
        lm.score_continuation(["a"], ["b", "c"])


def test_pairs_score_the_same_number_of_answer_tokens() -> None:
    lm = CharModel(max_length=16)
    (cond, alone), (rcond, ralone) = lm.score_pairs(["abcdefghij", "p" * 30], ["x" * 20, "y"])
    assert cond.tokens == alone.tokens == 16 - 11  # the alone pass is cut to the same 5 tokens
    assert rcond.missing and ralone.missing and "conditioned pass" in str(ralone.reason)


def test_unknown_runtime_is_a_config_error() -> None:
    from tunesmith.errors import ConfigError

    with pytest.raises(ConfigError, match="llama-cpp"):
        make_logprob_model("vllm")


def alpaca_rows(n: int, longest: bool) -> list[tuple[str, str]]:
    """(prompt, text) of IFD's both directions on the first n Alpaca rows (+ the longest one)."""
    from tests.conftest import shared_file
    from tunesmith.filters.ifd import ifd_prefixes

    rows = json.loads(shared_file("alpaca_random_9k", "random_9k.json").read_text("utf-8"))
    rows = rows[:n] + ([max(rows, key=lambda r: len(r["output"]))] if longest else [])
    pairs = [
        (f"{r['instruction']}\n\n{r['input']}" if r["input"] else r["instruction"], r["output"])
        for r in rows
    ]
    fwd, rev = ifd_prefixes(pairs)
    # a prompt ending in a space: tokenized together, " word" is one token across the boundary
    # (separate tokenization would give " " + "word"), so only Cherry's rule matches here
    spaced = [(f"Q: {q}\nA: ", a) for q, a in pairs]
    answers, instructions = [a for _, a in pairs], [q for q, _ in pairs]
    return [*zip(fwd, answers, strict=True), *zip(rev, instructions, strict=True), *spaced]


@pytest.mark.integration
@pytest.mark.parametrize("max_length", [1024, 128])
def test_equals_cherry_computation_on_real_rows(max_length: int) -> None:
    lm = scorer(max_length=max_length)
    # short windows are cheap on a CPU: more rows, the longest one, the cut and a full window
    rows = alpaca_rows(2, longest=False) if max_length == 1024 else alpaca_rows(4, longest=True)
    got = lm.score_pairs([p for p, _ in rows], [a for _, a in rows])
    cut = missing = 0
    for (prompt, answer), (cond, alone) in zip(rows, got, strict=True):
        ref_cond, n, ref_alone, m = cherry_nll(prompt, answer, max_length)
        cut += len(encode(prompt + answer)) > max_length
        if n <= 0:  # the prompt fills the window: Cherry's loss is NaN, ours is missing
            assert math.isnan(ref_cond) and cond.missing and alone.missing
            missing += 1
            continue
        assert (cond.tokens, alone.tokens) == (n, m) and n == m
        assert cond.nll == pytest.approx(ref_cond, rel=1e-4)
        assert alone.nll == pytest.approx(ref_alone, rel=1e-4)
        assert cond.ppl is not None and alone.ppl is not None
        assert cond.ppl / alone.ppl == pytest.approx(math.exp(ref_cond - ref_alone), rel=1e-4)
    if max_length == 128:  # the cut and the missing case are really exercised
        assert cut >= 3 and missing >= 1


@pytest.mark.integration
def test_whole_text_perplexity_equals_direct_computation() -> None:
    got = scorer().score_continuation([p for p, _ in CASES], [t for _, t in CASES])
    want = [direct_ppl(p, t) for p, t in CASES]
    assert [s.ppl for s in got] == pytest.approx(want, rel=1e-4)


@pytest.mark.integration
def test_batched_scoring_matches_one_by_one() -> None:
    texts, prefixes = [t for _, t in CASES], [p for p, _ in CASES]
    one = scorer(batch_size=1).token_logprobs(prefixes, texts)
    # Mixed lengths in one padded batch: only fp32 rounding of other GEMM shapes differs.
    many = scorer(batch_size=8).token_logprobs(prefixes, texts)
    for a, b in zip(one, many, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-3)


@pytest.mark.integration
def test_a_prompt_longer_than_the_window_is_missing_not_zero() -> None:
    lm = scorer(max_length=32)
    ((cond, alone),) = lm.score_pairs(["word " * 40], ["An answer."])
    assert cond.missing and alone.missing and "32-token window" in str(cond.reason)
    (empty,) = lm.score_continuation(None, [""])
    assert empty.missing and empty.reason == "empty text"


@pytest.mark.integration
def test_llama_cpp_runtime_scores_the_same_tokens_close_to_transformers() -> None:
    pytest.importorskip("llama_cpp")
    hf = scorer()
    gguf = make_logprob_model("llama-cpp", threads=1)
    for prefix, text in CASES[:3]:
        assert gguf.span(prefix, text) == hf.span(prefix, text)
    # Same weights, but llama.cpp runs the Q4_1 kernels: close, not equal.
    got = gguf.score_continuation([p for p, _ in CASES[:3]], [t for _, t in CASES[:3]])
    want = hf.score_continuation([p for p, _ in CASES[:3]], [t for _, t in CASES[:3]])
    assert [s.tokens for s in got] == [s.tokens for s in want]
    assert [s.ppl for s in got] == pytest.approx([s.ppl for s in want], rel=0.25)
    (missing,) = gguf.score_continuation(["word " * 2000], ["x"])
    assert missing.missing and "window" in str(missing.reason)
    gguf.close()


@pytest.mark.integration
def test_llama_cpp_runtime_shares_the_embedded_backend() -> None:
    pytest.importorskip("llama_cpp")
    from tunesmith.llm.embedded import EmbeddedBackend

    backend = EmbeddedBackend(threads=1)
    shared = backend.logprob_model()
    own = make_logprob_model("llama-cpp", threads=1)
    (a,) = shared.score_continuation([PREFIX], ["Red, blue and yellow."])
    (b,) = own.score_continuation([PREFIX], ["Red, blue and yellow."])
    assert a.tokens == b.tokens and a.nll == pytest.approx(b.nll, rel=1e-3)
    assert backend.score_continuation(PREFIX, "Red, blue and yellow.") == pytest.approx(
        list(own.token_logprobs([PREFIX], ["Red, blue and yellow."])[0]), rel=1e-3
    )
    own.close()
    backend.close()


def test_unknown_dtype_is_a_config_error() -> None:
    from tunesmith.errors import ConfigError

    with pytest.raises(ConfigError, match="float99"):
        make_logprob_model("transformers", "embedded", dtype="float99").setup()
