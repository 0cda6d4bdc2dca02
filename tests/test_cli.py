"""The CLI as a user meets it: help everywhere, one-line errors, no tracebacks, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tunesmith import __version__
from tunesmith.cli import app
from tunesmith.commands._options import LLMOptions, RunOptions, ScorerOptions, options

runner = CliRunner()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tunesmith", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_version_and_module_entry_point() -> None:
    result = _cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"tunesmith {__version__}"


def test_every_command_has_help() -> None:
    commands = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert {"respond", "convert"} <= set(commands)
    for name in commands:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output


def test_bad_input_is_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "fine"}\n{"instruction": "broken\n')
    result = _cli("respond", str(bad), "--out", str(tmp_path / "run"), "--backend", "fake")
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: {bad}:2: invalid JSON: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists(), "nothing is started before the input is valid"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = _cli("--debug", "convert", str(tmp_path / "missing.json"), str(tmp_path / "o.jsonl"))
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_unknown_backend_suggests_the_right_name(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "hi"}\n')
    result = _cli("respond", str(data), "--out", str(tmp_path / "run"), "--backend", "embeded")
    assert result.returncode == 2
    assert "unknown backend 'embeded' (did you mean 'embedded'?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_key_for_remote_server_never_prints_a_key(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "hi"}\n')
    result = _cli(
        "respond",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--backend",
        "openai",
        "--model",
        "gpt-x",
        "--base-url",
        "https://api.example.invalid/v1",
        "--api-key-env",
        "TUNESMITH_TEST_UNSET_KEY",
        env={"TUNESMITH_TEST_UNSET_KEY": ""},
    )
    assert result.returncode != 0
    assert "TUNESMITH_TEST_UNSET_KEY" in result.stderr and "Traceback" not in result.stderr


def test_api_key_never_reaches_the_run_folder(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "hi"}\n')
    secret = "sk-test-DO-NOT-STORE-123"
    result = _cli(
        "respond",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--backend",
        "fake",
        env={"OPENAI_API_KEY": secret},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "report.html").exists(), "every generation command writes its report"
    for path in (tmp_path / "run").iterdir():
        assert secret not in path.read_text(), path


def test_convert_between_styles(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps({"instruction": "Add", "input": "1 2", "output": "3"}) + "\n")
    result = runner.invoke(
        app, ["convert", str(src), str(tmp_path / "o.json"), "--style", "messages"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "o.json").read_text())
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "3"}
    bad = runner.invoke(app, ["convert", str(src), str(tmp_path / "o.json"), "--style", "sharegtp"])
    assert bad.exit_code != 0


@pytest.mark.parametrize("args", [["--help"], []])
def test_root_help(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert "tunesmith" in result.output.lower()


def _leaf_commands() -> list[tuple[list[str], Any]]:
    from typer.main import get_command

    def walk(cmd: Any, path: list[str]) -> list[tuple[list[str], Any]]:
        subs = getattr(cmd, "commands", None)
        if not subs:
            return [(path, cmd)]
        return [leaf for name, sub in subs.items() for leaf in walk(sub, [*path, name])]

    from tunesmith.commands._methods import OWN_COMMANDS, method_command

    # ``generate backtranslate`` and ``generate dynosaur`` are commands of their own (see _methods)
    own = [(["generate", m], method_command(m)) for m in OWN_COMMANDS]
    return walk(get_command(app), []) + own


def _flags(cmd: Any) -> set[str]:
    return {o for p in cmd.params for o in [*p.opts, *p.secondary_opts] if o.startswith("--")}


LLM_FLAGS = {
    "--backend", "--model", "--base-url", "--api-key-env", "--concurrency", "--rpm", "--tpm",
    "--threads", "--backend-option", "--cache", "--no-cache", "--prices", "--max-cost",
    "--max-calls",
}  # fmt: skip
LLM_COMMANDS = {"generate", "respond", "reflect", "demo", "compare-generators", "compare",
                "score quality", "train sedi-loop", "generate backtranslate", "generate dynosaur",
                "eval generate", "eval compare", "eval judge"}  # fmt: skip
NO_RUN_FOLDER = {"convert", "stats", "report", "eval leaderboard", "eval agreement",
                 "eval generate"}  # fmt: skip
#: Resumable folders of judged pairs, with no report.html of their own (the leaderboard is it).
NO_REPORT = {"eval compare", "eval judge"}
#: A trainer with no LLM and no run folder flags yet (DiffTune): checked once it has them.
NOT_YET_ON_GROUPS = {"train difftune"}


def test_every_command_has_every_option_of_its_groups() -> None:
    leaves = {" ".join(path): cmd for path, cmd in _leaf_commands()}
    assert set(leaves) >= LLM_COMMANDS
    for name, cmd in leaves.items():
        if name in NOT_YET_ON_GROUPS:
            continue
        flags = _flags(cmd)
        if name in LLM_COMMANDS:
            assert flags >= LLM_FLAGS, (name, LLM_FLAGS - flags)
        if name not in NO_RUN_FOLDER:
            report = set() if name in NO_REPORT else {"--report"}
            assert {"--force-new", "--retry-failed", *report} <= flags, name
        data_arg = any(p.name == "data" for p in cmd.params)
        if data_arg and name not in NO_RUN_FOLDER:
            assert {"--map", "--limit"} <= flags, name


def test_compare_generators_is_the_name_and_compare_a_hidden_alias() -> None:
    result = runner.invoke(app, ["--help"])
    assert "compare-generators" in result.output
    assert " compare " not in result.output.replace("compare-generators", "")
    assert runner.invoke(app, ["compare", "--help"]).exit_code == 0


def test_help_never_cuts_an_option_name_at_80_columns() -> None:
    import re

    for path, cmd in _leaf_commands():
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, path
        for flag in _flags(cmd):
            assert re.search(re.escape(flag) + r"(?![\w-])", result.output), (path, flag)
        assert max(len(line) for line in result.output.splitlines()) <= 80


def test_no_command_imports_another_command() -> None:
    import ast

    folder = Path(__file__).resolve().parents[1] / "src" / "tunesmith" / "commands"
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""] if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names] if isinstance(node, ast.Import) else []
            )  # fmt: skip
            for name in names:
                if name.startswith("tunesmith.commands."):
                    assert name.split(".")[-1].startswith("_"), (path.name, name)


def test_every_run_command_writes_its_report_and_counts_failed_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    import tunesmith.embeddings

    # select's embedder is not what this test is about (tests/select runs the real MiniLM)
    monkeypatch.setattr(tunesmith.embeddings, "embed",
                        lambda texts, model=None: np.eye(len(texts), dtype=np.float32))  # fmt: skip
    data = tmp_path / "d.jsonl"
    rows = [{"instruction": f"Explain topic number {i} in detail.", "output": "It is a long and "
             f"careful answer about topic {i}."} for i in range(3)]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "eval.jsonl").write_text(json.dumps(rows[0]) + "\n")
    commands = {
        "heuristics": ["filter", "heuristics", str(data), "--any-language"],
        "decontam": ["filter", "decontam", str(data), "--eval", str(tmp_path / "eval.jsonl")],
        "dedup": ["dedup", str(data)],
        "quality": ["score", "quality", str(data), "-b", "fake"],
        "select": ["select", str(data), "--k", "2"],
        "reflect": ["reflect", str(data), "-b", "fake", "--mode", "response"],
    }  # score ppl / ifd and filter ppl load a model: tests/scoring/test_cli_ppl.py and test_cli.py
    for name, args in commands.items():
        out = tmp_path / name
        result = runner.invoke(app, [*args, "--out", str(out)])
        assert result.exit_code == 0, (name, result.output)
        assert (out / "report.html").exists(), name
        assert f"-> {out}" in result.output and ", failed 0" in result.output, result.output
    # the fake model never follows the reflection format: all 3 kept unchanged, and said so
    reflect = runner.invoke(app, [*commands["reflect"], "--out", str(tmp_path / "reflect")])
    assert "kept 3 (3 unchanged: their LLM step failed), rejected 0" in reflect.output
    assert "kept unchanged 3 of 3 kept rows: their LLM step failed" in _page_text(
        tmp_path / "reflect" / "report.html"
    ), "the report's funnel shows them too"


def test_recipe_stage_table_counts_rows_whose_llm_step_failed(tmp_path: Path) -> None:
    rows = [{"instruction": f"Explain topic number {i} in detail.", "output": "It is a long and "
             f"careful answer about topic {i}."} for i in range(3)]  # fmt: skip
    (tmp_path / "data.json").write_text(json.dumps(rows))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "data: data.json\nllm: {backend: fake}\nstages:\n"
        "  - heuristics: {english_only: false}\n  - reflect: {mode: response}\n"
    )
    result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["0", "heuristics", "kept", "3,", "rejected", "0,", "failed", "0"]
    # the fake model never follows the reflection format: every row kept as it was, and said so
    assert lines[1].split()[:5] == ["1", "reflect", "kept", "3", "(3"]
    text = _page_text(tmp_path / "out" / "report.html")
    assert "3 kept · 100.0% · 3 unchanged: their LLM step failed" in text
    assert "kept unchanged 3 of 3 kept rows" in text


def _page_text(path: Path) -> str:
    import re

    return " ".join(re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8")).split())


def test_row_counts_drop_failed_rows_a_retry_kept(tmp_path: Path) -> None:
    from tunesmith.commands._common import count_rows, rows_line

    def write(name: str, rows: list[dict[str, Any]]) -> None:
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    failed = {"meta": {"reflection": {"status": "failed"}}}
    write("kept", [{"id": "a"}, {"id": "b", **failed}, {"id": "c"}])
    write("rejected", [{"id": "d"}])
    write("failed", [{"id": "c", "status": 500}, {"id": "e", "status": 400}])
    counts = count_rows(tmp_path)
    assert counts == {"kept": 3, "rejected": 1, "failed": 1, "unchanged": 1}
    assert rows_line(counts) == "kept 3 (1 unchanged: their LLM step failed), rejected 1, failed 1"


def test_force_new_reaches_the_driver(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "hi"}\n')
    out = tmp_path / "run"
    base = ["respond", str(data), "--out", str(out), "-b", "fake", "--no-report"]
    assert runner.invoke(app, [*base, "--max-tokens", "8"]).exit_code == 0
    refused = _cli(*base, "--max-tokens", "9")
    assert refused.returncode != 0 and "--force-new" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    again = runner.invoke(app, [*base, "--max-tokens", "9", "--force-new"])
    assert again.exit_code == 0 and "kept 1, rejected 0, failed 0" in again.output
    assert json.loads((out / "manifest.json").read_text())["config"]["params"]["max_tokens"] == 9


def test_a_run_stopped_by_its_budget_still_gets_its_report(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"q{i}"}) + "\n" for i in range(4)))
    out = tmp_path / "run"
    result = _cli("respond", str(data), "--out", str(out), "-b", "fake", "--max-calls", "2",
                  "--batch-size", "1")  # fmt: skip
    assert result.returncode != 0 and "budget" in result.stderr
    assert (out / "report.html").exists()
    assert json.loads((out / "manifest.json").read_text())["status"].startswith("stopped")


def test_option_groups_expand_into_the_signature_and_refuse_a_repeated_name() -> None:
    import inspect

    @options
    def cmd(x: int = 1, *, llm: LLMOptions, run: RunOptions) -> tuple[LLMOptions, RunOptions]:
        return llm, run

    names = list(inspect.signature(cmd).parameters)
    assert names[0] == "x" and {"backend", "max_calls", "force_new", "report"} <= set(names)
    params = inspect.signature(cmd).parameters
    defaults = {n: getattr(p.default, "default", p.default) for n, p in params.items()}
    llm, run = cmd(**defaults)
    assert llm == LLMOptions() and run == RunOptions() and llm.config().backend == "embedded"
    with pytest.raises(TypeError, match="option names repeat"):

        @options
        def both(*, llm: LLMOptions, lm: ScorerOptions) -> None:  # both have --model, --threads
            pass


def test_dedup_reads_through_the_field_map_and_limit(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    texts = ["Write a poem about the sea.", "Write a poem about the sea!", "List three fruits.",
             "Name a planet."]  # fmt: skip
    data.write_text("".join(json.dumps({"id": f"r{i}", "prompt": t}) + "\n"
                            for i, t in enumerate(texts)))  # fmt: skip
    out = tmp_path / "out"
    result = runner.invoke(app, ["dedup", str(data), "--out", str(out), "--map",
                                 "instruction=prompt", "--limit", "3", "--no-report"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "kept 2, rejected 1, failed 0 (threshold 0.7," in result.output
    kept = [json.loads(x)["instruction"] for x in (out / "kept.jsonl").open()]
    assert kept == [texts[0], texts[2]]


def test_eval_judge_config_keeps_the_judge_files_backend_unless_overridden() -> None:
    from tunesmith.commands.eval import JudgeLLMOptions, _config_for

    unset = _config_for(JudgeLLMOptions(), "fake", "judge-model", {"seed": 3})
    assert (unset.backend, unset.model, unset.options.get("seed")) == ("fake", "judge-model", 3)
    other = _config_for(JudgeLLMOptions(backend="embedded"), "fake", "judge-model", {"seed": 3})
    assert other.backend == "embedded" and other.model != "judge-model"
    assert "seed" not in other.options, "the judge file's options belong to its own backend"
    mine = _config_for(JudgeLLMOptions(backend="fake", model="m2"), "fake", "judge-model", {})
    assert (mine.backend, mine.model) == ("fake", "m2")


def _panels(help_text: str) -> dict[str, set[str]]:
    """The flags of each boxed help panel (``╭─ Options ─...``) of a ``--help`` output."""
    import re

    panels: dict[str, set[str]] = {}
    current = ""
    for line in help_text.splitlines():
        if head := re.match(r"\s*╭─ (.+?) ─", line):
            current = head.group(1)
            panels[current] = set()
        elif current and (flag := re.match(r"\s*│\s+(?:\*\s+)?(--[\w-]+)", line)):
            panels[current].add(flag.group(1))
    return panels


def test_an_option_group_shows_in_its_panel_and_a_panelless_group_with_the_commands_own() -> None:
    """A command's own options may be a group without a panel (``filter heuristics``): they stay
    in the Options panel; the shared groups keep theirs, a subclass's override too."""
    out = runner.invoke(app, ["filter", "heuristics", "--help"], env={"COLUMNS": "200"}).output
    panels = _panels(out)
    assert {"--min-instruction-words", "--any-language", "--help"} <= panels["Options"]
    assert {"--force-new", "--report"} <= panels["Run folder options"]
    assert {"--map", "--limit"} <= panels["Data options"]
    assert not panels["Options"] & {"--force-new", "--map"}
    out = runner.invoke(app, ["eval", "compare", "--help"], env={"COLUMNS": "200"}).output
    assert {"--backend", "--model", "--max-calls"} <= _panels(out)["LLM options"]
