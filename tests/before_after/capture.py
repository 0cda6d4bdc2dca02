"""Run every run-folder-writing path on small fixtures and print a normalized digest of the folders.

Used to prove the run-engine rework (issue 9) left outputs unchanged: the digest of the code
before the rework is stored in ``before.json``; ``test_before_after.py`` recomputes it with the
current code and compares (rows must match; keys may be added, never removed or changed).

    PYTHONPATH=<tree>/src:<tree> python tests/before_after/capture.py OUT_DIR > digest.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: Values that change from run to run (clocks, latencies, paths of the machine).
VOLATILE = {"t", "latency_s", "elapsed_s", "started", "finished", "argv", "versions", "resumed"}
ROWS = [
    {"instruction": "Name three primary colors.", "input": "", "output": "Red, yellow and blue."},
    {"instruction": "Name three primary colors.", "input": "", "output": "Red, blue, yellow."},
    {"instruction": "Translate 'cat' into French.", "input": "", "output": "Chat."},
    {"instruction": "Write a haiku about winter mornings.", "input": "", "output": ""},
    {"instruction": "Explain photosynthesis to a child.", "input": "", "output": "Plants eat it."},
    {
        "instruction": "Give the capital of Peru and Chile.",
        "input": "",
        "output": "Lima, Santiago.",
    },
]
RECIPE = """\
data: data.json
batch_size: 2
llm: {backend: fake}
stages:
  - heuristics: {english_only: false}
  - dedup: {threshold: 0.7}
  - reflect: {mode: response, max_tokens: 64}
"""


def _clean(value: Any, root: str) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v, root) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_clean(v, root) for v in value]
    if isinstance(value, str):
        import tunesmith

        return value.replace(root, "<TMP>").replace(str(Path(tunesmith.__file__).parent), "<PKG>")
    if isinstance(value, float):
        return round(value, 6)
    return value


def digest_folder(folder: Path, root: Path) -> dict[str, Any]:
    """Every file of a run folder, normalized (JSONL as row lists, JSON as objects)."""
    out: dict[str, Any] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            out[name] = _clean(rows, str(root))
        elif path.suffix == ".json":
            out[name] = _clean(json.loads(path.read_text()), str(root))
        elif path.suffix not in (".html", ".tmp"):
            out[name] = "<present>"
    return out


def _cli(args: list[str]) -> None:
    from typer.testing import CliRunner

    from tunesmith.cli import app

    res = CliRunner().invoke(app, args)
    if res.exit_code != 0:
        raise SystemExit(f"{args}: exit {res.exit_code}: {res.output} {res.exception!r}")


def run_all(root: Path) -> dict[str, Any]:
    """The scenarios: each CLI job command on the fake backend, a recipe, three generators."""
    from tests.generate.fakes import cheap_embed, responder
    from tunesmith.generate.pipeline import run_generation
    from tunesmith.llm.factory import LLMConfig
    from tunesmith.llm.fake import FakeBackend

    data = root / "data.json"
    data.write_text(json.dumps(ROWS))
    (root / "recipe.yaml").write_text(RECIPE)
    common = ["--backend", "fake", "--cache", str(root / "cache.sqlite")]
    _cli(["respond", str(data), "--out", str(root / "respond"), "--batch-size", "2", *common,
          "--no-report"])  # fmt: skip
    _cli(["reflect", str(data), "--out", str(root / "reflect"), "--mode", "response", *common])
    _cli(["filter", "heuristics", str(data), "--out", str(root / "heuristics"),
          "--min-output-words", "2"])  # fmt: skip
    _cli(["dedup", str(data), "--out", str(root / "dedup"), "--threshold", "0.7"])
    from tunesmith.recipes import load_recipe, run_recipe

    backend = FakeBackend(responses=lambda r, s: "Fine.\n[Better Answer] A longer answer. [End]")
    run_recipe(load_recipe(root / "recipe.yaml"), out=root / "recipe", backend=backend,
               report=False)  # fmt: skip
    for method, extra in (("self-instruct", {}), ("alpaca", {}), ("sedi", {"embedder": cheap_embed,
                          "train_batch_size": 4})):  # fmt: skip
        run_generation(
            method,
            seeds=None,
            out=root / method,
            config=LLMConfig(backend="fake", cache_path=str(root / f"{method}.sqlite")),
            params={"num_instructions": 8, "prompts_per_batch": 3, "max_rounds": 4, **extra},
            backend=FakeBackend(responses=responder),
        )
    names = [
        "respond",
        "reflect",
        "heuristics",
        "dedup",
        "recipe",
        "self-instruct",
        "alpaca",
        "sedi",
    ]
    return {name: digest_folder(root / name, root) for name in names}


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    json.dump(run_all(target), sys.stdout, indent=1, sort_keys=True)
