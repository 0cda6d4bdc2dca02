"""SFT: response-only labels, equality with a plain PyTorch loop, determinism, resume, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tunesmith.errors import ConfigError
from tunesmith.io import read_records
from tunesmith.records import Record

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tunesmith.train.data import IGNORE, Collator, encode, encode_all  # noqa: E402
from tunesmith.train.sft import SFTConfig, train_sft  # noqa: E402


def _log(run: Path, name: str = "train_log.jsonl") -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / name).read_text().splitlines()]


def _tok(path: Path) -> Any:
    return transformers.AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("template", ["chat", "alpaca"])
def test_prompt_tokens_carry_no_loss(tiny_model: Path, template: str) -> None:
    tok = _tok(tiny_model)
    rec = Record("r1", "Reverse the word.", "stop", "pots")
    ex = encode(rec, tok, template, max_length=256)
    assert ex is not None
    trained = [i for i, t in enumerate(ex.labels) if t != IGNORE]
    # one contiguous span at the end: exactly the response (and its end-of-turn / EOS token)
    assert trained == list(range(trained[0], len(ex.input_ids)))
    assert [ex.input_ids[i] for i in trained] == [ex.labels[i] for i in trained]
    prompt_text = tok.decode(ex.input_ids[: trained[0]])
    assert "Reverse the word." in prompt_text and "stop" in prompt_text
    assert tok.decode([ex.labels[i] for i in trained], skip_special_tokens=True).strip() == "pots"
    assert ex.labels[trained[-1] if template == "alpaca" else trained[0] + 1] in (
        tok.eos_token_id,
        *tok("<|im_end|>", add_special_tokens=False)["input_ids"],
    )


def test_collator_pads_without_loss_and_truncation_keeps_the_prompt(tiny_model: Path) -> None:
    tok = _tok(tiny_model)
    short = encode(Record("a", "Hi.", "", "Yo."), tok, "chat", 256)
    long = encode(Record("b", "Say many words.", "", "word " * 50), tok, "chat", 256)
    assert short is not None and long is not None
    batch = Collator(tok.pad_token_id)([short, long])
    n = len(short.input_ids)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, len(long.input_ids))
    assert (batch["labels"][0, n:] == IGNORE).all() and (batch["attention_mask"][0, n:] == 0).all()
    assert batch["row_ids"] == ["a", "b"]
    cut = encode(Record("b", "Say many words.", "", "word " * 50), tok, "chat", n + 3)
    assert cut is not None and len(cut.input_ids) == n + 3
    assert sum(t != IGNORE for t in cut.labels) >= 3
    # a prompt that fills the window teaches nothing: skipped, as are rows without an output
    assert encode(Record("c", "x " * 300, "", "y"), tok, "chat", 32) is None
    assert encode(Record("d", "Hi.", "", "  "), tok, "chat", 256) is None


def _reference_losses(model_dir: Path, records: list[Record], steps: int, batch: int, lr: float):
    """A plain PyTorch loop: same batches, AdamW, linear decay, clip_grad_norm_(1.0)."""
    tok = _tok(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    examples, _ = encode_all(records, tok, "chat", 48)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (steps - s) / steps))
    out = []
    for step in range(steps):
        rows = examples[step * batch : (step + 1) * batch]
        width = max(len(r.input_ids) for r in rows)
        ids = torch.tensor([r.input_ids + [0] * (width - len(r.input_ids)) for r in rows])
        labels = torch.tensor([r.labels + [IGNORE] * (width - len(r.labels)) for r in rows])
        mask = torch.tensor(
            [[1] * len(r.input_ids) + [0] * (width - len(r.input_ids)) for r in rows]
        )
        logits = model(input_ids=ids, attention_mask=mask).logits
        # next-token loss over response positions only
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            labels[:, 1:].reshape(-1),
            ignore_index=IGNORE,
        )
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        out.append((loss.item(), norm.item(), sched.get_last_lr()[0]))
        opt.step()
        sched.step()
        opt.zero_grad()
    return out


def test_losses_and_grad_norms_equal_a_plain_torch_loop(
    tiny_model: Path, rows_file: Path, tmp_path: Path
) -> None:
    records = read_records(rows_file)
    cfg = SFTConfig(
        model=str(tiny_model), batch_size=3, max_steps=4, max_length=48, learning_rate=1e-3,
        warmup_ratio=0.0, order="sequential", save_steps=100, template="chat",
    )  # fmt: skip
    summary = train_sft(records, tmp_path / "run", cfg, progress=False)
    log = _log(tmp_path / "run")
    ref = _reference_losses(tiny_model, records, steps=4, batch=3, lr=1e-3)
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    for row, (loss, norm, lr) in zip(log, ref, strict=True):
        assert row["loss"] == pytest.approx(loss, abs=1e-5)
        assert row["grad_norm"] == pytest.approx(norm, rel=1e-5)
        assert row["lr"] == pytest.approx(lr, rel=1e-9)
    assert log[0]["grad_norm"] > 1.0  # clipping was active, so later steps test it too
    assert summary["final_loss"] == log[-1]["loss"]
    steps = _log(tmp_path / "run", "step_rows.jsonl")
    assert steps[0]["ids"] == [r.id for r in records[:3]]


def test_seeded_runs_repeat_and_the_model_folder_loads(
    tiny_model: Path, rows_file: Path, tmp_path: Path
) -> None:
    records = read_records(rows_file)
    cfg = SFTConfig(model=str(tiny_model), batch_size=4, max_steps=3, max_length=48, seed=3)
    train_sft(records, tmp_path / "a", cfg, progress=False)
    train_sft(records, tmp_path / "b", cfg, progress=False)
    assert [r["loss"] for r in _log(tmp_path / "a")] == [r["loss"] for r in _log(tmp_path / "b")]
    cfg.seed = 4
    train_sft(records, tmp_path / "c", cfg, progress=False)
    assert _log(tmp_path / "a", "step_rows.jsonl") != _log(tmp_path / "c", "step_rows.jsonl")
    tuned = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "a" / "model")
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_model)
    assert not torch.equal(tuned.lm_head.weight, base.lm_head.weight)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["summary"]["steps"] == 3


def test_lora_trains_adapters_and_saves_a_merged_model(
    tiny_model: Path, rows_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("peft")
    records = read_records(rows_file)
    cfg = SFTConfig(
        model=str(tiny_model), batch_size=4, max_steps=2, max_length=48, lora=True,
        learning_rate=1e-2, lora_r=4, lora_alpha=8,
    )  # fmt: skip
    train_sft(records, tmp_path / "run", cfg, progress=False)
    tuned = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_model)
    names = [n for n, _ in tuned.named_parameters()]
    assert not any("lora" in n for n in names)
    q_tuned = tuned.model.layers[0].self_attn.q_proj.weight
    q_base = base.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(q_tuned, q_base)  # the adapter was merged in
    assert torch.equal(tuned.model.embed_tokens.weight, base.model.embed_tokens.weight)


def test_resume_refuses_another_config_and_presets(
    tiny_model: Path, rows_file: Path, tmp_path: Path
) -> None:
    records = read_records(rows_file)[:4]
    cfg = SFTConfig(model=str(tiny_model), batch_size=2, max_steps=1, max_length=48)
    first = train_sft(records, tmp_path / "run", cfg, progress=False)
    assert train_sft(records, tmp_path / "run", cfg, progress=False) == first  # done: no retrain
    cfg.learning_rate = 1e-3
    with pytest.raises(ConfigError, match=r"'sft\.learning_rate' \(2e-05 there, 0\.001 now\)"):
        train_sft(records, tmp_path / "run", cfg, progress=False)
    sedi = SFTConfig.from_preset("sedi", batch_size=None, seed=1)
    assert (sedi.learning_rate, sedi.batch_size, sedi.epochs, sedi.seed) == (2e-5, 16, 3.0, 1)
    assert (sedi.warmup_ratio, sedi.weight_decay, sedi.max_length) == (0.03, 0.0, 512)
    with pytest.raises(ConfigError, match="unknown preset"):
        SFTConfig.from_preset("sdei")
    assert math.isclose(SFTConfig.from_preset(None, learning_rate=1e-4).learning_rate, 1e-4)


def test_heldout_loss_is_the_token_mean_over_responses(tiny_model: Path, rows_file: Path) -> None:
    from tunesmith.train.evaluate import heldout_loss

    records = read_records(rows_file)
    tok = _tok(tiny_model)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model)
    examples, _ = encode_all(records, tok, "chat", 64)
    batch = Collator(tok.pad_token_id)(examples)
    batch.pop("row_ids")
    with torch.inference_mode():
        want = float(model(**batch).loss)  # one batch: HF's mean over all response tokens
    got = heldout_loss(str(tiny_model), records, max_length=64, batch_size=5)  # 3 batches
    assert got["loss"] == pytest.approx(want, rel=1e-5)
    assert got["rows"] == len(records) and got["tokens"] == sum(e.response_tokens for e in examples)
