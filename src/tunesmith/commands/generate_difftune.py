"""``tunesmith train difftune`` and ``tunesmith generate difftune`` (DiffTune, Wang & Liu 2023).

``generate`` is one command taking the method as its argument, and its ``--model`` names the
LLM; DiffTune's ``--model`` names the trained diffusion model, so ``generate difftune`` is its
own command: :class:`GenerateWithDiffTune` hands ``generate difftune ...`` to it (the other
methods are unchanged). ``train difftune`` joins the ``train`` group when one exists.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import typer

from tunesmith.commands._methods import MethodDispatch
from tunesmith.commands._options import OptionGroup, _option, options

difftune_train = typer.Typer(add_completion=False)
difftune_generate = typer.Typer(add_completion=False)


@difftune_train.command("difftune")
def train_difftune_cmd(
    data: Path = typer.Argument(..., help="Instruction dataset (any format tunesmith reads)."),
    out: Path = typer.Option(..., "--out", "-o", help="Model/run folder (rerun to resume)."),
    preset: str = typer.Option("tiny", "--preset", help="tiny (CPU minutes), small or paper."),
    max_steps: int = typer.Option(None, "--max-steps", help="Denoiser optimizer steps."),
    ae_steps: int = typer.Option(None, "--ae-steps", help="Autoencoder optimizer steps."),
    autoencoder: str = typer.Option(
        None, "--autoencoder", help="Pretrained BART folder (e.g. facebook/bart-base), frozen."
    ),
    num_latents: int = typer.Option(
        None, "--num-latents", help="Compress to K latents (LD4LG; 0 = one per token)."
    ),
    latent_dim: int = typer.Option(None, "--latent-dim", help="Width of compressed latents."),
    schedule: str = typer.Option(None, "--schedule", help="linear (DiffTune) or cosine (LD4LG)."),
    objective: str = typer.Option(None, "--objective", help="pred_x0, pred_v (LD4LG), pred_eps."),
    loss: str = typer.Option(None, "--loss", help="l1 (DiffTune) or l2 (LD4LG)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Denoiser batch size."),
    lr: float = typer.Option(None, "--lr", help="Denoiser peak learning rate."),
    save_steps: int = typer.Option(None, "--save-steps", help="Checkpoint every N steps."),
    field: str = typer.Option(None, "--field", help="instruction (default) or prompt."),
    limit: int = typer.Option(None, "--limit", help="Only the first N rows."),
    seed: int = typer.Option(None, "--seed", help="Seed (42)."),
    threads: int = typer.Option(None, "--threads", help="CPU threads (1; $TUNESMITH_THREADS)."),
    settings: list[str] = typer.Option(
        None, "--set", "-s", help="Any other setting KEY=VALUE (repeatable), e.g. -s ae_layers=3."
    ),
) -> None:
    """Train a DiffTune latent diffusion model (autoencoder, then denoiser) on DATA."""
    require_torch()
    from tunesmith.generate.diff_tune.config import DiffTuneConfig
    from tunesmith.generate.diff_tune.train import train_difftune
    from tunesmith.io import read_records

    opts = dict(
        steps=max_steps, ae_steps=ae_steps, autoencoder=autoencoder, num_latents=num_latents,
        latent_dim=latent_dim, schedule=schedule, objective=objective, loss=loss,
        batch_size=batch_size, lr=lr, save_steps=save_steps, field=field, seed=seed,
    )  # fmt: skip
    cfg = DiffTuneConfig.from_preset(preset, **{**opts, **parse_settings(settings)})
    records = read_records(data)[:limit] if limit else read_records(data)
    s = train_difftune(records, out, cfg, data_source=str(data), threads=threads)
    typer.echo(f"trained {s['ae_steps']} autoencoder + {s['steps']} denoiser steps on "
               f"{s['rows']} instructions (final loss {s['final_loss'] or 0:.4f}) -> {s['model_dir']}")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DiffTuneSampleOptions(OptionGroup):
    """How instructions are sampled from the diffusion model, filtered and answered."""

    num_instructions: int = _option(100, "--num-instructions", "-n", help="Target kept.")
    strategy: str = _option(
        "high_variance", "--strategy",
        help="Noise: high_variance (30% of vectors N(0,10I)), gaussian, student_t, "
        "all_high_variance.",
    )  # fmt: skip
    share: float = _option(0.3, "--share", help="Share of token vectors redrawn.")
    variance: float = _option(10.0, "--variance", help="Variance of redrawn vectors.")
    df: int = _option(2, "--df", help="Student-t degrees of freedom.")
    sampling_steps: int = _option(250, "--sampling-steps", help="Reverse diffusion steps.")
    sampler: str = _option("ddpm", "--sampler", help="ddpm or ddim.")
    num_beams: int = _option(10, "--num-beams", help="Beam width (Table 8: 10).")
    batch_size: int = _option(32, "--batch-size", help="Instructions sampled at once.")
    ppl_threshold: float = _option(
        150.0, "--ppl-threshold", help="Drop ppl above this (paper: 150 under GPT2-Large)."
    )
    ppl_model: str | None = _option(None, "--ppl-model", help="Causal LM for ppl (SmolLM2).")
    novelty: float | None = _option(None, "--novelty", help="ROUGE-L novelty threshold (off).")
    novelty_vs_train: bool = _option(False, "--novelty-vs-train", help="Also vs training set.")
    max_rounds: int = _option(10, "--max-rounds", help="Resampling rounds at most.")
    respond: bool = _option(True, "--respond/--no-respond", help="Ask the LLM for outputs.")
    max_tokens: int = _option(512, "--max-tokens", help="Response max_tokens.")
    seed: int = _option(42, "--seed", help="Sampling seed.")

    def generator(self, model: Path) -> Any:
        """The DiffTune generator of the trained model in folder ``model``."""
        from tunesmith.generate.diff_tune import DiffTune
        from tunesmith.generate.diff_tune.sample import SamplingSettings

        sampling = SamplingSettings(
            strategy=self.strategy, share=self.share, variance=self.variance, df=self.df,
            sampling_steps=self.sampling_steps, sampler=self.sampler, num_beams=self.num_beams,
            batch_size=self.batch_size,
        )  # fmt: skip
        return DiffTune(
            model=str(model), num_instructions=self.num_instructions, sampling=sampling,
            ppl_threshold=self.ppl_threshold, ppl_model=self.ppl_model, novelty=self.novelty,
            novelty_vs_train=self.novelty_vs_train, max_rounds=self.max_rounds,
            respond=self.respond, max_tokens=self.max_tokens, seed=self.seed,
        )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ResponderOptions(OptionGroup):
    """The LLM that answers the sampled instructions (``--model`` is the diffusion model here)."""

    backend: str = _option("embedded", "--backend", "-b", help="LLM backend for responses.")
    llm_model: str | None = _option(None, "--llm-model", help="LLM model for responses.")
    base_url: str | None = _option(None, "--base-url", help="OpenAI-compatible base URL.")
    api_key_env: str = _option("OPENAI_API_KEY", "--api-key-env", help="Env var of the key.")
    threads: int | None = _option(None, "--threads", help="CPU threads (1; $TUNESMITH_THREADS).")
    cache: Path | None = _option(None, "--cache", help="Request cache file.")
    no_cache: bool = _option(False, "--no-cache", help="Do not use the request cache.")
    max_cost: float | None = _option(None, "--max-cost", help="Stop before this many USD.")
    max_calls: int | None = _option(None, "--max-calls", help="Stop before this many calls.")

    def config(self) -> Any:
        """The responding LLM's client settings; a setting its backend does not take is ignored
        (``--threads`` also sets DiffTune's own torch threads)."""
        from tunesmith.llm.factory import SHARED_SETTINGS, LLMConfig, backend_settings

        takes = SHARED_SETTINGS.get(self.backend, ())
        given = {
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "threads": self.threads,
        }
        options = backend_settings(self.backend, {k: v for k, v in given.items() if k in takes})
        return LLMConfig(backend=self.backend, model=self.llm_model, options=options,
                         cache_path=str(self.cache) if self.cache else None,
                         use_cache=not self.no_cache, max_cost=self.max_cost,
                         max_calls=self.max_calls)  # fmt: skip


@difftune_generate.command("difftune")
@options
def generate_difftune_cmd(
    model: Path = typer.Option(..., "--model", "-m", help="Folder from 'train difftune'."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (rerun into it to resume)."),
    *,
    sample: DiffTuneSampleOptions,
    llm: ResponderOptions,
    force_new: bool = typer.Option(False, "--force-new", help="Set an existing run aside."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Resend failed rows."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html at the end."),
) -> None:
    """Sample instructions from a DiffTune model, filter by perplexity, respond with an LLM."""
    require_torch()
    import torch

    from tunesmith.generate.diff_tune.run import run_difftune

    torch.set_num_threads(llm.threads or int(os.environ.get("TUNESMITH_THREADS", "1")))
    gen = sample.generator(model)
    run = run_difftune(gen, out, config=llm.config() if sample.respond else None,
                       force_new=force_new, retry_failed=retry_failed)  # fmt: skip
    s = run.manifest.get("summary", {})
    typer.echo(f"kept {s.get('kept', 0)} of {s.get('instructions', 0)} instructions after "
               f"{s.get('rounds', 0)} rounds, rejected {s.get('rejected', 0)} -> {run.path}")  # fmt: skip
    if report:
        from tunesmith.report import write_run_report

        typer.echo(f"report -> {write_run_report(run.path, metrics='cheap')}")


def require_torch() -> None:
    """DiffTune needs the ``hf`` extra (torch, transformers): say so in one line if missing."""
    from tunesmith.errors import require

    require("torch", "hf")
    require("transformers", "hf")


def parse_settings(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings to settings; numbers and booleans are converted (JSON rules)."""
    import json

    from tunesmith.errors import ConfigError

    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set '{pair}' must be KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


class GenerateWithDiffTune(MethodDispatch):
    """The ``generate`` command, except that ``generate difftune ...`` runs DiffTune's command
    (and, through :class:`MethodDispatch`, ``generate backtranslate|dynosaur`` theirs)."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None,
                     **extra: Any) -> Any:  # fmt: skip
        if args and args[0] == "difftune":
            cmd = typer.main.get_command(difftune_generate)
            return cmd.make_context(f"{info_name} difftune", args[1:], parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)


def register(app: typer.Typer) -> None:
    for info in app.registered_commands:
        if info.name == "generate":
            info.cls = GenerateWithDiffTune


def extend(app: typer.Typer) -> None:
    """After every command registered: ``train difftune`` joins the ``train`` group."""
    group = next((g.typer_instance for g in app.registered_groups if g.name == "train"), None)
    if group is None:
        group = typer.Typer(help="Train a model on instruction data.", no_args_is_help=True)
        app.add_typer(group, name="train")
    group.registered_commands.extend(difftune_train.registered_commands)
