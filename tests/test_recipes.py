"""Recipes: validation with file:line errors, chaining, logged removals, resume without repeats."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunesmith.errors import BudgetExceeded, ConfigError
from tunesmith.llm.base import Request
from tunesmith.llm.fake import FakeBackend
from tunesmith.recipes import load_recipe, run_recipe
from tunesmith.runs import RunDir

REPO = Path(__file__).resolve().parents[1]

ROWS = [
    {"instruction": "Name three primary colors.", "input": "", "output": "Red, yellow and blue."},
    {"instruction": "Name three primary colors.", "input": "", "output": "Red, blue, yellow."},
    {"instruction": "Translate 'cat' into French.", "input": "", "output": "Chat."},
    {"instruction": "Write a haiku about winter mornings.", "input": "", "output": ""},
    {
        "instruction": "Explain photosynthesis to a child.",
        "input": "",
        "output": "Plants eat light.",
    },
    {
        "instruction": "Give the capital of Peru and Chile.",
        "input": "",
        "output": "Lima and Santiago.",
    },
]

RECIPE = """\
data: data.json
batch_size: 2
llm:
  backend: fake
stages:
  - heuristics:
      english_only: false
  - dedup:
      threshold: 0.7
  - reflect:
      mode: response
      max_tokens: 64
"""


def better(request: Request, sample: int) -> str:
    return "Too short.\n[Better Answer] A clearer and more complete answer. [End]"


def read_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def write_recipe(tmp_path: Path, text: str = RECIPE) -> Path:
    (tmp_path / "data.json").write_text(json.dumps(ROWS))
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("data: x\nstages:\n  - heuristic: {}\n", 3, "did you mean 'heuristics'"),
        (
            "data: x\nstages:\n  - reflect:\n      mode: both\n      max_tokns: 5\n",
            5,
            "unknown parameter of stage 'reflect' 'max_tokns' (did you mean 'max_tokens'?)",
        ),
        ("data: x\nstages:\n  - reflect:\n      mode: sideways\n", 3, "mode must be one of"),
        ("data: x\nstagez: []\n", 2, "did you mean 'stages'"),
        ("data: x\nllm:\n  backend: fake\n  temprature: 1\nstages: [select]\n", 4, "llm key"),
        ("data: x\nllm:\n  backend: fakey\nstages: [select]\n", 2, "unknown backend"),
        ("data: x\nstages:\n  - select: {k: 0}\n", 3, "k must be >= 1"),
        ("data: x\nstages:\n  - select: [1, 2]\n", 3, "must be a mapping"),
        ("data: x\nstages: [\n", 3, "invalid YAML"),
        ("stages: [select]\n", 1, "missing required key 'data'"),
        ("data: x\nlimit: ten\nstages: [select]\n", 2, "must be an integer"),
        ("data: x\nmap: {instrucion: prompt}\nstages: [select]\n", 2, "did you mean 'instruction'"),
    ],
)
def test_validation_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, needle: str
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert f"{path}:{line}:" in str(info.value)
    assert needle in str(info.value)


def test_example_recipe_validates() -> None:
    recipe = load_recipe(REPO / "examples" / "recipes" / "alpaca_curate.yaml")
    assert [s.name for s in recipe.stages] == ["heuristics", "dedup", "reflect", "ifd", "select"]
    assert recipe.llm is not None and recipe.llm.backend == "embedded"
    # its data ships with the repository, so it runs from a fresh clone
    assert recipe.data.exists() and recipe.data.resolve().is_relative_to(REPO.resolve())


def test_a_recipe_reads_its_data_through_its_field_map(tmp_path: Path) -> None:
    """``map:`` does in a recipe what ``--map`` does on the command line (issue 16)."""
    from typer.testing import CliRunner

    from tunesmith.cli import app

    rows = [{"prompt": f"Explain topic number {i} in detail.", "response": f"Topic {i} is a long "
             "story with many careful details."} for i in range(3)]  # fmt: skip
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: chat.jsonl\nmap: {instruction: prompt, output: response}\n"
                      "stages:\n  - heuristics: {english_only: false}\n")  # fmt: skip
    result = CliRunner().invoke(app, ["run", str(recipe), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    kept = [json.loads(x) for x in (tmp_path / "out" / "kept.jsonl").open()]
    assert [(r["instruction"], r["output"]) for r in kept] == [
        (r["prompt"], r["response"]) for r in rows
    ]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config"]["map"] == {"instruction": "prompt", "output": "response"}


def test_chain_keeps_scores_logs_removals_and_resumes(tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path))
    backend = FakeBackend(responses=better)
    run = run_recipe(recipe, out=tmp_path / "run", backend=backend, report=False)
    kept = run.read_kept()
    assert len(kept) == 4 and backend.calls == 4
    for rec in kept:
        assert "rouge_l_max" in rec.scores and rec.scores["reflected"] == 1.0
        assert rec.output == "A clearer and more complete answer."
    rejected = {r["rejected_by"]: r for r in run.read_rejected()}
    assert set(rejected) == {"heuristics", "dedup"}
    assert rejected["dedup"]["score"] > 0.7 and rejected["dedup"]["reason"]
    stages = sorted(p.name for p in (run.path / "stages").iterdir())
    assert stages == ["00-heuristics", "01-dedup", "02-reflect"]
    assert run.manifest["status"] == "done" and run.load_state()["completed"] == [0, 1, 2]
    assert "reflection/response" in run.manifest["prompts"]
    # a finished run reruns from its checkpoints: no stage work, no LLM call
    again = FakeBackend(responses=better)
    run_recipe(recipe, out=tmp_path / "run", backend=again, report=False)
    assert again.calls == 0


def test_budget_stop_then_resume_pays_each_call_once(tmp_path: Path) -> None:
    text = RECIPE.replace("  backend: fake\n", "  backend: fake\n  max_calls: 2\n")
    recipe = load_recipe(write_recipe(tmp_path, text))
    first = FakeBackend(responses=better)
    with pytest.raises(BudgetExceeded):
        run_recipe(recipe, out=tmp_path / "run", backend=first, report=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "stopped (budget)"
    assert len(read_ids(tmp_path / "run" / "stages" / "02-reflect" / "kept.jsonl")) == 2
    assert recipe.llm is not None
    recipe.llm.max_calls = None
    second = FakeBackend(responses=better)
    run = run_recipe(recipe, out=tmp_path / "run", backend=second, report=False)
    assert first.calls + second.calls == 4 and len(run.kept_ids()) == 4
    assert run.load_ledger().total().calls == 4


def test_report_hook_is_skipped_without_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunesmith.recipes import write_report

    monkeypatch.setitem(sys.modules, "tunesmith.report", None)  # import now raises ImportError
    run = RunDir.open(tmp_path / "r", method="recipe")
    assert write_report(run) is None
    assert not (tmp_path / "r" / "report.html").exists()


def _count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.integration
def test_alpaca_recipe_killed_and_resumed_repeats_no_llm_call(
    tmp_path: Path, alpaca_9k_path: Path
) -> None:
    """Real data, real SmolLM2: SIGKILL mid-reflection, rerun, and every call is paid once; the
    result equals an uninterrupted reference run (own cache, temperature 0) row for row."""
    from tunesmith.llm.cache import RequestCache

    def recipe_file(name: str, cache: Path) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"data: {alpaca_9k_path}\nlimit: 6\nbatch_size: 2\n"
            f"llm:\n  backend: embedded\n  options: {{threads: 1}}\n  cache_path: {cache}\n"
            "stages:\n  - heuristics: {}\n  - dedup: {threshold: 0.7}\n"
            "  - reflect: {mode: response, max_tokens: 64}\n"
            "  - ifd: {max_value: 1.0, batch_size: 4}\n"
            "  - select: {k: 3, score: ifd}\n"
        )
        return path

    env = {**os.environ, "TUNESMITH_THREADS": "1"}
    ref = tmp_path / "ref"
    ref_cmd = [sys.executable, "-m", "tunesmith", "run", str(recipe_file("ref", tmp_path / "ref.sqlite")),
               "--out", str(ref)]  # fmt: skip
    reference = subprocess.run(ref_cmd, env=env, capture_output=True, text=True, timeout=400)
    assert reference.returncode == 0, reference.stdout + reference.stderr
    cache = tmp_path / "requests.sqlite"
    recipe = recipe_file("recipe", cache)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tunesmith", "run", str(recipe), "--out", str(out)]
    reflect_kept = out / "stages" / "02-reflect" / "kept.jsonl"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while _count_lines(reflect_kept) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    calls_before = json.loads((out / "ledger.json").read_text())["total"]["calls"]
    cached_before = len(RequestCache(cache))
    assert cached_before >= 2

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    calls_after = json.loads((out / "ledger.json").read_text())["total"]["calls"]
    cached_after = len(RequestCache(cache))
    reflected = _count_lines(reflect_kept) + _count_lines(reflect_kept.with_name("rejected.jsonl"))
    # one completed call per reflected row, and the resumed run paid only for new ones
    assert cached_after == reflected
    assert calls_after - calls_before == cached_after - cached_before
    assert cached_after - cached_before < reflected

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["resumed"] >= 1
    kept = [json.loads(line) for line in (out / "kept.jsonl").read_text().splitlines()]
    assert 1 <= len(kept) <= 3
    for row in kept:
        assert {"ifd", "rifd", "reflected", "select_rank"} <= set(row["scores"])
        assert row["meta"]["reflection"]["status"] in ("reflected", "failed")
    assert _count_lines(out / "rejected.jsonl") + len(kept) <= 6
    # row for row what the uninterrupted run gave: nothing lost, repeated or changed
    _assert_same_rows(out, ref)
    try:
        from tunesmith.report import write_run_report  # noqa: F401
    except ImportError:
        return
    assert (out / "report.html").stat().st_size > 0


def _assert_same_rows(out: Path, ref: Path) -> None:
    """Same kept rows (ids, order, text; scores within float noise) and same rejections."""
    for name in ("kept.jsonl", "rejected.jsonl", "stages/02-reflect/kept.jsonl"):
        got = [json.loads(x) for x in (out / name).read_text().splitlines() if x.strip()]
        want = [json.loads(x) for x in (ref / name).read_text().splitlines() if x.strip()]
        key = (lambda r: r["id"]) if name.startswith("rejected") else (lambda r: 0)
        got, want = sorted(got, key=key), sorted(want, key=key)
        assert [r["id"] for r in got] == [r["id"] for r in want], name
        for a, b in zip(got, want, strict=True):
            assert (a["instruction"], a["output"], a.get("rejected_by")) == (
                b["instruction"], b["output"], b.get("rejected_by"))  # fmt: skip
            for k, v in b["scores"].items():
                assert a["scores"][k] == (pytest.approx(v, rel=1e-4) if isinstance(v, float) else v)


def test_resuming_with_a_changed_recipe_is_refused(tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path))
    run_recipe(recipe, out=tmp_path / "run", backend=FakeBackend(responses=better), report=False)
    changed = load_recipe(
        write_recipe(tmp_path, RECIPE.replace("threshold: 0.7", "threshold: 0.5"))
    )
    expected = r"different 'stages\[1\]\.dedup\.threshold' \(0\.7 there, 0\.5 now\).*--force-new"
    with pytest.raises(ConfigError, match=expected):
        run_recipe(
            changed, out=tmp_path / "run", backend=FakeBackend(responses=better), report=False
        )
    # --force-new sets the old run aside and starts over with the new stages
    run = run_recipe(changed, out=tmp_path / "run", backend=FakeBackend(responses=better),
                     report=False, force_new=True)  # fmt: skip
    assert run.manifest["config"]["stages"][1] == {"dedup": {"threshold": 0.5}}
    assert len(list(tmp_path.glob("run.replaced-*"))) == 1


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "examples" / "recipes").glob("*.yaml")), ids=str
)
def test_every_example_recipe_loads_with_data_from_the_repo_alone(path: Path) -> None:
    """The README's example recipes run from a fresh clone: no data outside the repository."""
    recipe = load_recipe(path)
    repo = Path(__file__).parents[1].resolve()
    assert recipe.data.resolve().is_relative_to(repo), recipe.data
    assert recipe.data.is_file(), recipe.data
