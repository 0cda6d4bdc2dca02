"""LD4LG's compression and a named (pretrained, frozen) BART folder."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from tunesmith.generate.diff_tune.autoencoder import LatentAutoencoder, new_bart, train_tokenizer
from tunesmith.generate.diff_tune.config import DiffTuneConfig
from tunesmith.generate.diff_tune.sample import SamplingSettings, load_model, sample_instructions
from tunesmith.generate.diff_tune.train import batch_ids, read_log, train_difftune

from .conftest import CORPUS, records


def test_compression_gives_k_latents_of_latent_dim() -> None:
    cfg = DiffTuneConfig.from_preset("tiny")
    tok = train_tokenizer(CORPUS, 300)
    torch.manual_seed(0)
    ae = LatentAutoencoder(new_bart(cfg, len(tok)), num_latents=4, latent_dim=8, layers=1)
    ids, attn = batch_ids(tok, CORPUS[:3], 64)
    z, mask = ae.encode(ids, attn)
    assert z.shape == (3, 4, 8) and mask.all() and ae.latent_dim == 8
    assert ae.memory(z).shape == (3, 4, cfg.ae_d_model)
    loss = ae.loss(ids, attn)
    loss.backward()
    assert torch.isfinite(loss) and ae.compressor is not None
    assert ae.compressor.queries.grad is not None  # the compression nets learn from the loss


def test_a_named_bart_stays_frozen_and_only_compression_trains(tmp_path: Path) -> None:
    cfg = DiffTuneConfig.from_preset("tiny")
    tok = train_tokenizer(CORPUS, 300)
    torch.manual_seed(0)
    bart_dir = tmp_path / "bart"
    new_bart(cfg, len(tok)).save_pretrained(bart_dir)
    tok.save_pretrained(bart_dir)
    cfg = DiffTuneConfig.from_preset("tiny", autoencoder=str(bart_dir), num_latents=4,
                                     latent_dim=16, compress_layers=1, ae_steps=5, steps=5)  # fmt: skip
    out = tmp_path / "run"
    train_difftune(records(), out, cfg, data_source="corpus", progress=False)
    before = load_file(str(bart_dir / "model.safetensors"))
    after = load_file(str(out / "model" / "autoencoder" / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)  # BART untouched (LD4LG)
    assert [r["phase"] for r in read_log(out)] == ["autoencoder"] * 5 + ["denoiser"] * 5
    model = load_model(out)
    assert set(model.lengths) == {4}  # a fixed number of latents
    rows = sample_instructions(model, 2, SamplingSettings(sampling_steps=3, num_beams=1), seed=0)
    assert len(rows) == 2 and all(r["length"] == 4 for r in rows)
