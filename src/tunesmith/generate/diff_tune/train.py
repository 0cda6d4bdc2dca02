"""Training a DiffTune model: the autoencoder, then the latent denoiser (one readable loop).

DiffTune (Wang & Liu 2023) trains LD4LG's latent diffusion model (Lovelace et al. 2023) on an
instruction set. Two phases share one loop (:func:`fit`):

1. ``autoencoder``: reconstruction cross-entropy through the latents (a from-scratch BART-shaped
   model, or only LD4LG's compression nets around a frozen pretrained BART);
2. ``denoiser``: the masked L1 (or L2) regression of :mod:`.diffusion` on the frozen encoder's
   standardised latents, with self-conditioning and EMA weights.

Each step draws its batch from a seeded permutation and re-seeds torch from (seed, phase, step),
so a run killed and resumed from a checkpoint takes exactly the steps an uninterrupted run takes.

Run folder ``OUT``::

    manifest.json      resolved config, data fingerprint, status, summary
    train_log.jsonl    one row per optimizer step: phase, step, loss, lr, grad_norm (pre-clip)
    checkpoints/       <phase>-<step>.pt (model, EMA, optimizer, schedule); the newest resumes
    tokenizer/         the corpus BPE tokenizer (from-scratch autoencoder)
    model/             autoencoder/ (HF BART + tokenizer), autoencoder_extra.safetensors,
                       denoiser.safetensors (EMA weights), difftune.json, train_texts.json
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tunesmith.errors import ConfigError
from tunesmith.generate.diff_tune.autoencoder import (
    LatentAutoencoder,
    load_autoencoder,
    load_pretrained_bart,
    new_bart,
    train_tokenizer,
)
from tunesmith.generate.diff_tune.config import DiffTuneConfig
from tunesmith.generate.diff_tune.denoiser import Denoiser
from tunesmith.generate.diff_tune.diffusion import GaussianDiffusion
from tunesmith.records import Record
from tunesmith.runs import RunDir

TRAIN_LOG = "train_log.jsonl"
PHASE_SEED = {"autoencoder": 1, "denoiser": 2}


def texts_of(records: Sequence[Record], field: str) -> list[str]:
    """The non-empty training texts (the instruction by default, as DiffTune)."""
    if field not in ("instruction", "prompt"):
        raise ConfigError(f"difftune field '{field}' (instruction or prompt)")
    out = [r.instruction if field == "instruction" else r.prompt_text() for r in records]
    return [t.strip() for t in out if t.strip()]


def batch_ids(
    tokenizer: Any, texts: Sequence[str], max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask (B, L) padded to the longest text of the batch."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=True,
                    return_tensors="pt")  # fmt: skip
    return enc["input_ids"], enc["attention_mask"]


def batch_indices(step: int, batch: int, n: int, seed: int) -> list[int]:
    """Rows of step ``step``: positions step*B .. step*B+B-1 of seeded per-epoch permutations."""
    out, perms = [], {}
    for pos in range(step * batch, (step + 1) * batch):
        epoch, i = divmod(pos, n)
        if epoch not in perms:
            perms[epoch] = torch.randperm(
                n, generator=torch.Generator().manual_seed(seed * 7919 + epoch)
            )
        out.append(int(perms[epoch][i]))
    return out


def check_resume(out: Path, config: dict[str, Any], what: str = "trained") -> None:
    """A folder that already holds a run must have been made with the identical config."""
    manifest = out / "manifest.json"
    if not manifest.exists():
        return
    old = json.loads(manifest.read_text(encoding="utf-8")).get("config", {})
    new = json.loads(json.dumps(config, default=str))
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            raise ConfigError(
                f"{out} was {what} with {key}={old.get(key)!r}, not {new.get(key)!r}; "
                "use another --out for a new run"
            )


#: Settings only the denoiser phase reads: they may change while that phase has not started.
DENOISER_KEYS = ("dim", "layers", "heads", "diffusion_steps", "schedule", "objective", "loss",
                 "self_condition_prob", "steps", "lr", "batch_size", "warmup_steps",
                 "weight_decay", "clip", "ema_decay")  # fmt: skip


def open_folder(out: Path, config: dict[str, Any]) -> RunDir:
    """Create or resume the run folder; a resumed folder must hold the identical config.

    The denoiser's settings may still change once the autoencoder is trained and before the
    first denoiser checkpoint (nothing trained so far depends on them).
    """
    manifest = out / "manifest.json"
    ae_done = (out / "model" / "autoencoder" / "config.json").exists()
    if manifest.exists() and ae_done and not checkpoints(out, "denoiser"):
        old = json.loads(manifest.read_text(encoding="utf-8"))
        old["config"].update({k: config[k] for k in DENOISER_KEYS})
        manifest.write_text(json.dumps(old, indent=2), encoding="utf-8")
    check_resume(out, config)
    return RunDir.open(out, method="difftune", config=config)


def train_difftune(
    records: Sequence[Record], out: str | os.PathLike[str], cfg: DiffTuneConfig, *,
    data_source: str = "", threads: int | None = None, progress: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Train (or resume) a DiffTune model into ``out``; returns the run summary."""
    torch.set_num_threads(threads or int(os.environ.get("TUNESMITH_THREADS", "1")))
    texts = texts_of(records, cfg.field)
    if len(texts) < 2:
        raise ConfigError(f"difftune needs at least 2 non-empty {cfg.field}s, got {len(texts)}")
    folder = Path(out)
    fp = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    run = open_folder(folder, {**cfg.to_dict(), "data": data_source, "data_fingerprint": fp})
    if (run.manifest.get("summary") or {}).get("trained"):
        return dict(run.manifest["summary"])
    model_dir = folder / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    ae, tokenizer = autoencoder_phase(folder, cfg, texts, progress)
    losses = denoiser_phase(folder, cfg, texts, ae, tokenizer, progress)
    summary = {"trained": True, "rows": len(texts), "ae_steps": cfg.ae_steps, "steps": cfg.steps,
               "final_loss": losses[-1] if losses else None, "model_dir": str(model_dir)}  # fmt: skip
    run.finish("done", **summary)
    return summary


def autoencoder_phase(
    folder: Path, cfg: DiffTuneConfig, texts: list[str], progress: bool
) -> tuple[LatentAutoencoder, Any]:
    """Train the autoencoder (or reload it when done), set latent statistics, save it."""
    model_dir = folder / "model"
    if (model_dir / "autoencoder" / "config.json").exists():
        return load_autoencoder(model_dir, cfg)
    if cfg.autoencoder:
        bart, tokenizer = load_pretrained_bart(cfg.autoencoder)
        bart.requires_grad_(False)  # LD4LG keeps BART frozen; only compression nets train
    else:
        tok_dir = folder / "tokenizer"
        if not tok_dir.exists():
            train_tokenizer(texts, cfg.vocab_size).save_pretrained(tok_dir)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        torch.manual_seed(cfg.seed)
        bart = new_bart(cfg, len(tokenizer))
    ae = LatentAutoencoder(bart, cfg.num_latents, cfg.latent_dim, cfg.compress_layers)
    steps = cfg.ae_steps if (not cfg.autoencoder or cfg.num_latents) else 0

    def loss_fn(idx: list[int]) -> torch.Tensor:
        ids, attn = batch_ids(tokenizer, [texts[i] for i in idx], cfg.max_length)
        return ae.loss(ids, attn)

    if steps:
        ae.train()
        fit(folder, "autoencoder", ae, loss_fn, cfg, steps=steps, lr=cfg.ae_lr,
            batch=cfg.ae_batch_size, n=len(texts), ema_decay=None, progress=progress)  # fmt: skip
    ae.eval()
    set_latent_stats(ae, tokenizer, texts, cfg.max_length)
    ae.save(model_dir, tokenizer)
    return ae, tokenizer


@torch.no_grad()
def set_latent_stats(
    ae: LatentAutoencoder, tokenizer: Any, texts: list[str], max_length: int
) -> None:
    """Per-dimension mean/std of the latents over (up to 2,048) training texts."""
    ae.latent_mean.zero_()
    ae.latent_std.fill_(1.0)
    total, sq = torch.zeros(ae.latent_dim), torch.zeros(ae.latent_dim)
    count = 0
    for start in range(0, min(len(texts), 2048), 64):
        ids, attn = batch_ids(tokenizer, texts[start : start + 64], max_length)
        z, mask = ae.encode(ids, attn)  # (B, L, d), (B, L)
        z = z[mask]  # (N, d) real positions only
        total, sq, count = total + z.sum(0), sq + z.pow(2).sum(0), count + z.shape[0]
    mean = total / count
    ae.latent_mean.copy_(mean)
    ae.latent_std.copy_((sq / count - mean.pow(2)).clamp(min=1e-8).sqrt())


def latent_lengths(
    ae: LatentAutoencoder, tokenizer: Any, texts: list[str], max_length: int
) -> dict[int, int]:
    """Empirical distribution of latent sequence lengths (DiffTune samples l from it)."""
    if ae.num_latents:
        return {ae.num_latents: len(texts)}
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    return dict(sorted(Counter(len(ids) for ids in enc["input_ids"]).items()))


def denoiser_phase(
    folder: Path, cfg: DiffTuneConfig, texts: list[str], ae: LatentAutoencoder, tokenizer: Any,
    progress: bool,
) -> list[float]:  # fmt: skip
    """Train the denoiser on the frozen encoder's latents; save the EMA weights and metadata."""
    from safetensors.torch import save_file

    ae.requires_grad_(False)
    lengths = latent_lengths(ae, tokenizer, texts, cfg.max_length)
    max_len = ae.num_latents or cfg.max_length
    torch.manual_seed(cfg.seed)
    denoiser = Denoiser(ae.latent_dim, cfg.dim, cfg.layers, cfg.heads, max_len)
    diffusion = GaussianDiffusion(steps=cfg.diffusion_steps, schedule=cfg.schedule,
                                  objective=cfg.objective, loss=cfg.loss)  # fmt: skip

    def loss_fn(idx: list[int]) -> torch.Tensor:
        ids, attn = batch_ids(tokenizer, [texts[i] for i in idx], cfg.max_length)
        with torch.no_grad():
            z, mask = ae.encode(ids, attn)  # (B, L, d), (B, L)
        return diffusion.training_loss(denoiser, z, mask, cfg.self_condition_prob)

    ema, losses = fit(folder, "denoiser", denoiser, loss_fn, cfg, steps=cfg.steps, lr=cfg.lr,
                      batch=cfg.batch_size, n=len(texts), ema_decay=cfg.ema_decay,
                      progress=progress)  # fmt: skip
    assert ema is not None
    model_dir = folder / "model"
    save_file(
        {k: v.contiguous() for k, v in ema.state_dict().items()},
        str(model_dir / "denoiser.safetensors"),
    )
    meta = {"config": cfg.to_dict(), "latent_dim": ae.latent_dim, "max_len": max_len,
            "lengths": {str(k): v for k, v in lengths.items()}}  # fmt: skip
    (model_dir / "difftune.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    (model_dir / "train_texts.json").write_text(
        json.dumps(texts, ensure_ascii=False), encoding="utf-8"
    )
    return losses


def fit(
    folder: Path, phase: str, model: nn.Module, loss_fn: Callable[[list[int]], torch.Tensor],
    cfg: DiffTuneConfig, *, steps: int, lr: float, batch: int, n: int, ema_decay: float | None,
    progress: bool,
) -> tuple[nn.Module | None, list[float]]:  # fmt: skip
    """AdamW + warmup/cosine decay + clipping + EMA, logging and checkpointing every step.

    Returns the EMA copy (None without EMA) and the losses of the steps run in this call.
    """
    from transformers import get_cosine_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, min(cfg.warmup_steps, steps // 2), steps)
    ema = copy.deepcopy(model).requires_grad_(False) if ema_decay is not None else None
    start = resume(folder, phase, model, ema, opt, sched)
    losses: list[float] = []
    with step_progress(phase, steps, start, progress) as advance:
        for step in range(start, steps):
            torch.manual_seed(cfg.seed * 1_000_003 + PHASE_SEED[phase] * 100_000_007 + step)
            loss = loss_fn(batch_indices(step, batch, n, cfg.seed + PHASE_SEED[phase]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.clip))
            opt.step()
            sched.step()
            if ema is not None and ema_decay is not None:
                update_ema(ema, model, min(ema_decay, (1 + step) / (10 + step)))
            losses.append(loss.item())
            row = {"phase": phase, "step": step + 1, "loss": losses[-1],
                   "lr": sched.get_last_lr()[0], "grad_norm": grad_norm}  # fmt: skip
            append_log(folder, row)
            if (step + 1) % cfg.save_steps == 0 or step + 1 == steps:
                save_checkpoint(folder, phase, step + 1, model, ema, opt, sched)
            advance(losses[-1])
    return ema, losses


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model (warmed up as (1 + s) / (10 + s))."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1 - decay)


@contextmanager
def step_progress(
    phase: str, steps: int, start: int, enabled: bool
) -> Iterator[Callable[[float], None]]:
    """A live bar on stderr (steps done, current loss); a no-op when disabled."""
    if not enabled:
        yield lambda _loss: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from tunesmith.progress import STDERR

    cols = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*cols, console=STDERR, transient=False) as bar:
        task = bar.add_task(f"difftune {phase}", total=steps, completed=start)

        def advance(loss: float) -> None:
            bar.update(task, advance=1, description=f"difftune {phase} loss {loss:.4f}")

        yield advance


def append_log(folder: Path, row: dict[str, Any]) -> None:
    with (folder / TRAIN_LOG).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def read_log(folder: Path) -> list[dict[str, Any]]:
    """Rows of ``train_log.jsonl`` (a torn last line from a kill is skipped)."""
    path = folder / TRAIN_LOG
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def checkpoints(folder: Path, phase: str) -> list[Path]:
    return sorted((folder / "checkpoints").glob(f"{phase}-*.pt"))


def save_checkpoint(folder: Path, phase: str, step: int, model: nn.Module, ema: nn.Module | None,
                    opt: Any, sched: Any) -> None:  # fmt: skip
    """Write ``checkpoints/<phase>-<step>.pt`` atomically and keep the newest two."""
    path = folder / "checkpoints" / f"{phase}-{step:07d}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"step": step, "model": model.state_dict(), "optim": opt.state_dict(),
             "sched": sched.state_dict(), "ema": ema.state_dict() if ema is not None else {}}  # fmt: skip
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a kill mid-save leaves only the .tmp, which resume ignores
    for old in checkpoints(folder, phase)[:-2]:
        old.unlink()


def resume(
    folder: Path, phase: str, model: nn.Module, ema: nn.Module | None, opt: Any, sched: Any
) -> int:
    """Load the newest checkpoint of ``phase``; drop log rows after it. Returns its step."""
    found = checkpoints(folder, phase)
    step = 0
    if found:
        state = torch.load(found[-1], weights_only=True)  # tensors and plain containers only
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
        step = int(state["step"])
    keep = [r for r in read_log(folder) if r.get("phase") != phase or r["step"] <= step]
    tmp = folder / (TRAIN_LOG + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
    os.replace(tmp, folder / TRAIN_LOG)
    return step
