"""A tiny randomly initialised Llama with SmolLM2's real tokenizer, for fast training tests.

The architecture, tokenizer, chat template and trainer code paths are the real ones; only the
width and depth are shrunk so a step takes milliseconds on one CPU thread.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tunesmith.errors import TunesmithError
    from tunesmith.llm.models import embedded_hf_dir

    try:
        tok = transformers.AutoTokenizer.from_pretrained(embedded_hf_dir())
    except TunesmithError as exc:
        pytest.skip(f"embedded model unavailable: {exc}")
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    transformers.LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture
def rows_file(tmp_path: Path) -> Path:
    """Twelve short instruction rows (two with an input), as JSONL."""
    path = tmp_path / "rows.jsonl"
    rows = [
        {
            "instruction": f"Count from 1 to {i}.",
            "output": ", ".join(str(k) for k in range(1, i + 1)),
        }
        for i in range(1, 11)
    ]
    rows += [
        {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
        {"instruction": "Reverse the word.", "input": "stop", "output": "pots"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
