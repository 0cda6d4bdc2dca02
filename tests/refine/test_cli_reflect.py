"""``tunesmith reflect`` / ``select`` / ``run`` as a user meets them (fake backend, real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROWS = [
    {"instruction": "Name a fruit.", "input": "", "output": "Apple."},
    {"instruction": "Add 1 and 2.", "input": "", "output": "3"},
]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tunesmith", *args], capture_output=True,
                          text=True, env=dict(os.environ), timeout=300)  # fmt: skip


def test_reflect_cli_on_fake_backend_keeps_failed_rows(tmp_path: Path) -> None:
    data = tmp_path / "d.json"
    data.write_text(json.dumps(ROWS))
    out = tmp_path / "run"
    res = cli("reflect", str(data), "--out", str(out), "--mode", "response", "--backend", "fake")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in (out / "kept.jsonl").read_text().splitlines()]
    # the fake model never writes the markers: both rows kept as originals, marked failed
    assert [r["output"] for r in rows] == ["Apple.", "3"]
    assert {r["meta"]["reflection"]["status"] for r in rows} == {"failed"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert "reflection/response" in manifest["prompts"]


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    data = tmp_path / "d.json"
    data.write_text(json.dumps(ROWS))
    res = cli("reflect", str(data), "--out", str(tmp_path / "r"), "--mode", "sideways")
    assert res.returncode != 0 and "mode must be one of" in res.stderr
    assert "Traceback" not in res.stderr
    res = cli("select", str(data), "--out", str(tmp_path / "s"), "--method", "random")
    assert res.returncode != 0 and "method must be one of" in res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: d.json\nstages:\n  - reflekt: {}\n")
    res = cli("run", str(bad), "--check")
    assert res.returncode != 0 and f"{bad}:3:" in res.stderr and "reflect" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.integration
def test_select_cli_deita_on_scored_rows(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "instruction": "Name a fruit.", "scores": {"q": 3, "c": 2}},
        {"id": "b", "instruction": "Name one fruit.", "scores": {"q": 3, "c": 1}},
        {"id": "c", "instruction": "Explain gravity to a child.", "scores": {"q": 1, "c": 1}},
        {"id": "d", "instruction": "Sort a list in Python.", "scores": {"q": 2}},
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "sel"
    res = cli("select", str(data), "--out", str(out), "--k", "2", "--score", "q*c",
              "--field", "instruction")  # fmt: skip
    assert res.returncode == 0, res.stderr
    kept = [json.loads(line)["id"] for line in (out / "kept.jsonl").read_text().splitlines()]
    # "b" ranks second but is too close to "a" (MiniLM cosine 0.92 > 0.9): the bound skips it
    assert kept == ["a", "c"]
    rejected = {json.loads(x)["id"]: json.loads(x) for x in (out / "rejected.jsonl").open()}
    assert rejected["d"]["reason"] == "no q*c score" and rejected["d"]["rejected_by"] == "select"
    from tunesmith.embeddings import embed

    a, b = embed(["Name a fruit.", "Name one fruit."])
    assert float(a @ b) > 0.9
    assert rejected["b"]["score"] == pytest.approx(float(a @ b), abs=1e-4)
    assert rejected["b"]["reason"].startswith("cosine")
