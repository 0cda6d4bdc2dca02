"""DiffTune speed on CPU (1 thread): training steps/s and sampled instructions/s, each against a
plain PyTorch reference loop of the same model and batch in the same run.

1. Training: tunesmith's ``fit`` (per-step reseeding, batch permutation, AdamW + warmup/cosine,
   clipping, EMA, a train_log row per step, one checkpoint) vs a bare loop (same model, same
   batch, same loss: forward, backward, clip, AdamW step), for the denoiser and the autoencoder
   of the offline ``small`` preset on Alpaca instructions.
2. Sampling: ``sample_instructions`` (length draw, DiffTune noise, DDIM, beam search with
   Table 8's settings) vs a hand-written DDIM loop + ``bart.generate`` on the same lengths and
   noise (same work; best of 2 alternating runs); both must give the same latents (checked).

``--table3`` runs the Table 3 protocol instead (``benchmarks/difftune_table3.py``).

Run: ``TUNESMITH_THREADS=1 .venv/bin/python benchmarks/difftune.py [--train-steps 20] [--write]``
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("TUNESMITH_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]


def setup(preset: str, rows: int) -> tuple[Any, Any, Any, list[str], Any]:
    """Config, a fresh autoencoder and denoiser of the preset's size, texts, tokenizer."""
    from difftune_table3 import split
    from tunesmith.generate.diff_tune.autoencoder import (
        LatentAutoencoder,
        new_bart,
        train_tokenizer,
    )
    from tunesmith.generate.diff_tune.config import DiffTuneConfig
    from tunesmith.generate.diff_tune.denoiser import Denoiser

    cfg = DiffTuneConfig.from_preset(preset)
    texts = [r.instruction for r in split()[0][:rows]]
    tok = train_tokenizer(texts, cfg.vocab_size)
    torch.manual_seed(0)
    ae = LatentAutoencoder(new_bart(cfg, len(tok))).eval()
    den = Denoiser(ae.latent_dim, cfg.dim, cfg.layers, cfg.heads, cfg.max_length)
    return cfg, ae, den, texts, tok


def time_fit(cfg: Any, model: Any, loss_fn: Any, steps: int, batch: int, n: int, ema: Any) -> float:
    """Steps/s of tunesmith's loop (writes its log and one checkpoint into a temp folder)."""
    from tunesmith.generate.diff_tune.train import fit

    cfg.save_steps = steps
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        fit(Path(tmp), "denoiser", model, loss_fn, cfg, steps=steps, lr=cfg.lr, batch=batch, n=n,
            ema_decay=ema, progress=False)  # fmt: skip
        return steps / (time.perf_counter() - t0)


def time_plain(model: Any, loss_fn: Any, steps: int, batch: int, lr: float) -> float:
    """Steps/s of the bare reference loop: the same loss, AdamW and clipping, nothing else."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    t0 = time.perf_counter()
    for step in range(steps):
        loss = loss_fn([(step * batch + i) % 1000 for i in range(batch)])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    return steps / (time.perf_counter() - t0)


def training(preset: str, steps: int) -> dict[str, float]:
    from tunesmith.generate.diff_tune.diffusion import GaussianDiffusion
    from tunesmith.generate.diff_tune.train import batch_ids

    cfg, ae, den, texts, tok = setup(preset, 2000)
    diff = GaussianDiffusion(steps=cfg.diffusion_steps, schedule=cfg.schedule,
                             objective=cfg.objective, loss=cfg.loss)  # fmt: skip

    def den_loss(idx: list[int]) -> torch.Tensor:
        ids, attn = batch_ids(tok, [texts[i] for i in idx], cfg.max_length)
        with torch.no_grad():
            z, mask = ae.encode(ids, attn)
        return diff.training_loss(den, z, mask, cfg.self_condition_prob)

    def ae_loss(idx: list[int]) -> torch.Tensor:
        ids, attn = batch_ids(tok, [texts[i] for i in idx], cfg.max_length)
        return ae.loss(ids, attn)

    out = {}
    out["denoiser_plain"] = time_plain(den, den_loss, steps, cfg.batch_size, cfg.lr)
    out["denoiser_tunesmith"] = time_fit(
        cfg, den, den_loss, steps, cfg.batch_size, 1000, cfg.ema_decay
    )
    ae.train()
    out["ae_plain"] = time_plain(ae, ae_loss, steps, cfg.ae_batch_size, cfg.ae_lr)
    out["ae_tunesmith"] = time_fit(cfg, ae, ae_loss, steps, cfg.ae_batch_size, 1000, None)
    return out


def plain_ddim(model: Any, z: torch.Tensor, mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Reference DDIM (eta 0) written out: x0 = f(x_t); x_{t'} = sqrt(ab') x0 + sqrt(1-ab') eps."""
    ab_all = model.diffusion.alpha_bar
    ts = model.diffusion.timesteps(steps)
    x, x0 = z, None
    for i, t in enumerate(ts):
        ab = ab_all[t]
        x0 = model.denoiser(x, torch.full((z.shape[0],), t / model.diffusion.steps), mask, x0)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        ab_prev = ab_all[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
        x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    return x0


def sampling(model_dir: Path | None, preset: str, n: int, steps: int) -> dict[str, float]:
    from tunesmith.generate.diff_tune.config import DiffTuneConfig
    from tunesmith.generate.diff_tune.diffusion import GaussianDiffusion
    from tunesmith.generate.diff_tune.sample import (
        DiffTuneModel,
        SamplingSettings,
        load_model,
        sample_instructions,
        sample_latents,
    )

    if model_dir is not None:
        model = load_model(model_dir)
    else:
        _cfg, ae, den, texts, tok = setup(preset, 2000)
        diff = GaussianDiffusion(steps=1000, schedule="linear", objective="pred_x0", loss="l1")
        model = DiffTuneModel(ae, tok, den.eval(), diff, DiffTuneConfig.from_preset(preset),
                              {12: 1, 16: 1, 20: 1}, texts)  # fmt: skip
    from tunesmith.generate.diff_tune.noise import draw_noise
    from tunesmith.generate.diff_tune.sample import sample_lengths

    # the same work on both sides: seed 1 fixes lengths and noise, DDIM makes the rest fixed
    ddim = SamplingSettings(sampling_steps=steps, sampler="ddim", batch_size=n)

    def ours() -> float:
        t0 = time.perf_counter()
        sample_instructions(model, n, ddim, seed=1)
        return n / (time.perf_counter() - t0)

    def reference() -> tuple[float, torch.Tensor]:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            t0 = time.perf_counter()
            lens = sample_lengths(model.lengths, n, g)
            mask = torch.arange(max(lens)).unsqueeze(0) < torch.tensor(lens).unsqueeze(1)
            z, _ = draw_noise((n, max(lens), model.ae.latent_dim), generator=g)
            x_ref = plain_ddim(model, z, mask, steps)
            model.ae.generate(x_ref, mask, **ddim.decoding())
            return n / (time.perf_counter() - t0), x_ref

    runs = [(ours(), reference()) for _ in range(2)]  # alternate, keep the best of each
    with torch.no_grad():
        x_ours, _, _ = sample_latents(model, n, ddim, torch.Generator().manual_seed(1))
    x_ref = runs[0][1][1]
    return {"sample_tunesmith": max(r[0] for r in runs), "sample_plain": max(r[1][0] for r in runs),
            "ddim_max_abs_diff": float((x_ours - x_ref).abs().max())}  # fmt: skip


def render(train: dict[str, float], samp: dict[str, float], args: argparse.Namespace) -> str:
    cpu = platform.processor() or platform.machine()
    return f"""## DiffTune speed (`benchmarks/difftune.py`, CPU, 1 thread)

`TUNESMITH_THREADS=1 .venv/bin/python benchmarks/difftune.py --train-steps {args.train_steps} --samples {args.samples} --write`
on {cpu}, torch {torch.__version__}, {os.cpu_count()} cores shared with other jobs (timings are noisy).
Model: the `{args.preset}` preset (BART {args.preset} autoencoder, denoiser); {"trained model " + str(args.model) if args.model else "freshly initialised weights"}.

| what | tunesmith | plain PyTorch loop | ratio |
| --- | --- | --- | --- |
| denoiser training steps/s (batch 64) | {train["denoiser_tunesmith"]:.2f} | {train["denoiser_plain"]:.2f} | {train["denoiser_tunesmith"] / train["denoiser_plain"]:.2f} |
| autoencoder training steps/s (batch 32) | {train["ae_tunesmith"]:.2f} | {train["ae_plain"]:.2f} | {train["ae_tunesmith"] / train["ae_plain"]:.2f} |
| sampled instructions/s ({args.sample_steps} DDIM steps, 10 beams, best of 2) | {samp["sample_tunesmith"]:.3f} | {samp["sample_plain"]:.3f} | {samp["sample_tunesmith"] / samp["sample_plain"]:.2f} |

tunesmith's loop adds per-step reseeding, EMA, a log row per step and a checkpoint; the
reference has none of these. DDIM latents from tunesmith's sampler and the hand-written loop
differ by at most {samp["ddim_max_abs_diff"]:.2e} (same noise). No GPU was available to this run,
so the BART-base configuration was not timed.
"""


def write_section(text: str) -> None:
    path = REPO / "BENCHMARKS.md"
    body = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"## DiffTune speed.*?(?=\n## |\Z)", re.S)
    body = (
        pattern.sub(text.strip() + "\n", body)
        if pattern.search(body)
        else body.rstrip() + "\n\n" + text
    )
    path.write_text(body, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--train-steps", type=int, default=20, help="training steps timed per loop")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--sample-steps", type=int, default=250)
    ap.add_argument("--model", type=Path, default=None, help="trained model folder to sample")
    ap.add_argument("--table3", action="store_true", help="run the Table 3 protocol instead")
    ap.add_argument("--write", action="store_true")
    args, rest = ap.parse_known_args()
    if args.table3:
        import difftune_table3

        sys.argv = [sys.argv[0], *rest] + (["--write"] if args.write else [])
        difftune_table3.main()
        return
    torch.set_num_threads(1)
    train = training(args.preset, args.train_steps)
    samp = sampling(args.model, args.preset, args.samples, args.sample_steps)
    text = render(train, samp, args)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
