"""``tunesmith filter heuristics|decontam|ppl``: drop rows, keeping each removal with its reason."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from tunesmith.commands import _common as c
from tunesmith.commands._options import OptionGroup, _option
from tunesmith.stages import Stage

# Rule-based filters look across rows (duplicate outputs): one batch holds the whole set.
WHOLE_SET = 1_000_000
_NO_IDENTITY_HELP = "Do not drop 'As an AI language model' or other assistants' names."


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

    result = c.run_job(run_record_job, stage, data, out, method, run, rows, extra=extra,
                       config=None, batch_size=batch_size)  # fmt: skip
    c.finish(result.path, run)


@dataclasses.dataclass(frozen=True)
class HeuristicOptions(OptionGroup):
    """``filter heuristics``'s own options, and the :class:`HeuristicFilter` they configure."""

    min_instruction_words: int = _option(1, "--min-instruction-words")
    max_instruction_words: int = _option(512, "--max-instruction-words")
    min_output_words: int = _option(1, "--min-output-words")
    max_output_words: int | None = _option(None, "--max-output-words")
    blacklist: list[str] | None = _option(
        None, "--blacklist", help="Drop rows whose instruction/input has this word (repeatable)."
    )
    blacklist_file: Path | None = _option(
        None, "--blacklist-file", help="One blacklisted word or phrase per line."
    )
    self_instruct_blacklist: bool = _option(
        False, "--self-instruct-blacklist", help="Add Self-Instruct's list (image, graph...)."
    )
    output_blacklist: list[str] | None = _option(
        None, "--output-blacklist", help="Drop rows whose output has this word (repeatable)."
    )
    no_identity: bool = _option(False, "--no-identity", help=_NO_IDENTITY_HELP)
    allow_empty_output: bool = _option(
        False, "--allow-empty-output", help="Keep rows without an output (instruction-only sets)."
    )
    keep_duplicates: bool = _option(False, "--keep-duplicates")
    any_language: bool = _option(False, "--any-language", help="Skip the English check.")
    language_field: str = _option(
        "prompt", "--language-field", help="prompt (instruction+input) or text (with output)."
    )
    name_mentions: bool = _option(
        False, "--name-mentions", help="Drop any mention of other assistants' names."
    )

    def stage(self) -> Stage:
        """The filter these options describe (the negated flags turn rules off)."""
        from tunesmith.filters import heuristic_filter as h

        words = list(self.blacklist or []) + _lines(self.blacklist_file)
        if self.self_instruct_blacklist:
            words += list(h.SELF_INSTRUCT_BLACKLIST)
        return h.HeuristicFilter(
            min_instruction_words=self.min_instruction_words,
            max_instruction_words=self.max_instruction_words,
            min_output_words=self.min_output_words, max_output_words=self.max_output_words,
            blacklist=words, output_blacklist=list(self.output_blacklist or []),
            require_output=not self.allow_empty_output,
            drop_duplicate_outputs=not self.keep_duplicates, english_only=not self.any_language,
            language_field=self.language_field, drop_name_mentions=self.name_mentions,
            identity_strings=() if self.no_identity else h.IDENTITY_STRINGS,
            assistant_names=() if self.no_identity else h.ASSISTANT_NAMES,
        )  # fmt: skip


filter_app = typer.Typer(
    help="Filter rows (heuristics, decontamination, perplexity).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(filter_app, name="filter")


@filter_app.command("heuristics")
@c.options
def heuristics(
    data: Path = c.DATA, out: Path = c.OUT, *, rules: HeuristicOptions,
    run: c.RunOptions, rows: c.DataOptions,
) -> None:  # fmt: skip
    """Length bounds, keyword blacklists, identity strings, empty/duplicate outputs, non-English."""
    _run_filter(rules.stage(), data, out, WHOLE_SET, "filter_heuristics", run, rows)


@filter_app.command("decontam")
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

    stage = Decontaminator(eval_files=eval_files, n=n, rouge_threshold=rouge_threshold,
                           field=field, eval_field=eval_field)  # fmt: skip
    stage.setup()  # read the eval files before creating the run folder
    _run_filter(stage, data, out, batch_size, "filter_decontam", run, rows)


@filter_app.command("ppl")
@c.options
def ppl(
    data: Path = c.DATA,
    out: Path = c.OUT,
    threshold: float = typer.Option(150.0, "--threshold", help="Drop ppl > this (DiffTune: 150)."),
    min_ppl: float = typer.Option(None, "--min-ppl", help="Also drop ppl < this."),
    field: str = c.PPL_FIELD,
    batch_size: int = c.BATCH,
    rescore: bool = typer.Option(False, "--rescore", help="Ignore ppl scores already on rows."),
    *,
    lm: c.ScorerOptions,
    run: c.RunOptions,
    rows: c.DataOptions,
) -> None:
    """Perplexity filter (DiffTune 2.3): drop rows whose field has ppl above the threshold."""
    from tunesmith.filters.perplexity_filter import PerplexityFilter

    stage = PerplexityFilter(scorer=c.make_scorer(lm), model=lm.model, field=field,
                             threshold=threshold, min_ppl=min_ppl, rescore=rescore)  # fmt: skip
    _run_filter(stage, data, out, batch_size, "filter_ppl", run, rows, runtime=lm.runtime)
