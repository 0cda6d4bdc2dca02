"""``tunesmith filter heuristics|decontam|ppl``: drop rows, keeping each removal with its reason."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.commands import _common as c
from tunesmith.stages import Stage

# Rule-based filters look across rows (duplicate outputs): one batch holds the whole set.
WHOLE_SET = 1_000_000


def _lines(path: Path | None) -> list[str]:
    if path is None:
        return []
    from tunesmith.errors import DataError

    if not path.exists():
        raise DataError(path, None, "no such file")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.startswith("#")]


def _run_filter(
    stage: Stage, data: Path, out: Path, batch_size: int, method: str,
    run: c.RunOptions, rows: c.DataOptions, **extra: object,
) -> None:  # fmt: skip
    """Run a filter stage (no LLM) into a run folder, print what it kept, write its report."""
    from tunesmith.jobs import run_record_job

    result = run_record_job(
        stage, rows.read(data), out=out, config=None, batch_size=batch_size, method=method,
        extra_config={"data": str(data), **extra}, **c.driver_flags(run_record_job, run),
    )  # fmt: skip
    c.finish(result.path, run)


def register(app: typer.Typer) -> None:
    filt = typer.Typer(
        help="Filter rows (heuristics, decontamination, perplexity).", no_args_is_help=True
    )
    app.add_typer(filt, name="filter")

    @filt.command("heuristics")
    @c.options
    def heuristics(
        data: Path = c.DATA,
        out: Path = c.OUT,
        min_instruction_words: int = typer.Option(1, "--min-instruction-words"),
        max_instruction_words: int = typer.Option(512, "--max-instruction-words"),
        min_output_words: int = typer.Option(1, "--min-output-words"),
        max_output_words: int = typer.Option(None, "--max-output-words"),
        blacklist: list[str] = typer.Option(
            None,
            "--blacklist",
            help="Drop rows whose instruction/input has this word (repeatable).",
        ),
        blacklist_file: Path = typer.Option(
            None, "--blacklist-file", help="One blacklisted word or phrase per line."
        ),
        self_instruct_blacklist: bool = typer.Option(
            False, "--self-instruct-blacklist", help="Add Self-Instruct's list (image, graph...)."
        ),
        output_blacklist: list[str] = typer.Option(
            None, "--output-blacklist", help="Drop rows whose output has this word (repeatable)."
        ),
        no_identity: bool = typer.Option(
            False,
            "--no-identity",
            help="Do not drop 'As an AI language model' or other assistants' names.",
        ),
        allow_empty_output: bool = typer.Option(
            False,
            "--allow-empty-output",
            help="Keep rows without an output (instruction-only sets).",
        ),
        keep_duplicates: bool = typer.Option(False, "--keep-duplicates"),
        any_language: bool = typer.Option(False, "--any-language", help="Skip the English check."),
        language_field: str = typer.Option(
            "prompt", "--language-field", help="prompt (instruction+input) or text (with output)."
        ),
        name_mentions: bool = typer.Option(
            False, "--name-mentions", help="Drop any mention of other assistants' names."
        ),
        *,
        run: c.RunOptions,
        rows: c.DataOptions,
    ) -> None:
        """Length bounds, keyword blacklists, identity strings, empty/duplicate outputs, non-English."""
        from tunesmith.filters.heuristic_filter import (
            ASSISTANT_NAMES,
            IDENTITY_STRINGS,
            SELF_INSTRUCT_BLACKLIST,
            HeuristicFilter,
        )

        words = list(blacklist or []) + _lines(blacklist_file)
        if self_instruct_blacklist:
            words += list(SELF_INSTRUCT_BLACKLIST)
        stage = HeuristicFilter(
            min_instruction_words=min_instruction_words,
            max_instruction_words=max_instruction_words,
            min_output_words=min_output_words,
            max_output_words=max_output_words,
            blacklist=words,
            output_blacklist=list(output_blacklist or []),
            require_output=not allow_empty_output,
            drop_duplicate_outputs=not keep_duplicates,
            english_only=not any_language,
            language_field=language_field,
            drop_name_mentions=name_mentions,
            identity_strings=() if no_identity else IDENTITY_STRINGS,
            assistant_names=() if no_identity else ASSISTANT_NAMES,
        )
        _run_filter(stage, data, out, WHOLE_SET, "filter_heuristics", run, rows)

    @filt.command("decontam")
    @c.options
    def decontam(
        data: Path = c.DATA,
        out: Path = c.OUT,
        eval_files: list[Path] = typer.Option(
            ..., "--eval", "-e", help="Evaluation dataset to protect (repeatable)."
        ),
        n: int = typer.Option(13, "--n", help="Word n-gram size."),
        rouge_threshold: float = typer.Option(
            None, "--rouge-threshold", help="Also drop when ROUGE-L F > this (e.g. 0.7)."
        ),
        field: str = typer.Option("prompt", "--field", help="prompt, instruction, output or text."),
        eval_field: str = typer.Option("prompt", "--eval-field"),
        batch_size: int = c.BATCH,
        *,
        run: c.RunOptions,
        rows: c.DataOptions,
    ) -> None:
        """Drop rows overlapping an evaluation set (13-gram or ROUGE-L)."""
        from tunesmith.filters.decontaminator import Decontaminator

        stage = Decontaminator(
            eval_files=eval_files,
            n=n,
            rouge_threshold=rouge_threshold,
            field=field,
            eval_field=eval_field,
        )
        stage.setup()  # read the eval files before creating the run folder
        _run_filter(stage, data, out, batch_size, "filter_decontam", run, rows)

    @filt.command("ppl")
    @c.options
    def ppl(
        data: Path = c.DATA,
        out: Path = c.OUT,
        threshold: float = typer.Option(
            150.0, "--threshold", help="Drop ppl > this (DiffTune: 150)."
        ),
        min_ppl: float = typer.Option(None, "--min-ppl", help="Also drop ppl < this."),
        field: str = typer.Option(
            "instruction", "--field", help="instruction, input, output, prompt or text."
        ),
        batch_size: int = c.BATCH,
        rescore: bool = typer.Option(False, "--rescore", help="Ignore ppl scores already on rows."),
        *,
        lm: c.ScorerOptions,
        run: c.RunOptions,
        rows: c.DataOptions,
    ) -> None:
        """Perplexity filter (DiffTune 2.3): drop rows whose field has ppl above the threshold."""
        from tunesmith.filters.perplexity_filter import PerplexityFilter

        scorer = c.make_scorer(lm)
        stage = PerplexityFilter(
            scorer=scorer,
            model=lm.model,
            field=field,
            threshold=threshold,
            min_ppl=min_ppl,
            rescore=rescore,
        )
        _run_filter(stage, data, out, batch_size, "filter_ppl", run, rows, runtime=lm.runtime)
