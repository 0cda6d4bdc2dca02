"""SeDi-Instruct's feedback loop: real training (tiny Llama, CPU), scripted teacher, real files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

from tests.generate.fakes import cheap_embed, responder
from tunesmith.generate.sedi import Sedi
from tunesmith.generate.seeds import SeedTask, load_seeds
from tunesmith.llm.factory import LLMConfig
from tunesmith.llm.fake import FakeBackend
from tunesmith.records import Record
from tunesmith.train import feedback as fb_mod
from tunesmith.train.feedback import FeedbackConfig, SeedFeedback
from tunesmith.train.sedi_loop import run_sedi_feedback
from tunesmith.train.sft import SFTConfig

BATCH = 4
EVERY = 3


def _rows(run: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / name).read_text().splitlines()]


def _loop(out: Path, tiny: Path, backend: FakeBackend, **llm: Any) -> dict[str, Any]:
    return run_sedi_feedback(
        out,
        llm_config=LLMConfig(backend="fake", **llm),
        sft=SFTConfig(
            model=str(tiny), batch_size=BATCH, max_length=64, learning_rate=1e-3, save_steps=4
        ),
        feedback=FeedbackConfig(num_instructions=40, every=EVERY),
        gen_params={"max_tokens": 400},
        backend=backend,
        embedder=cheap_embed,
        progress=False,
    )


def test_candidates_must_differ_from_every_live_seed(tmp_path: Path) -> None:
    gen = Sedi(embedder=cheap_embed)
    gen.setup_seeds(load_seeds(None))
    fb = SeedFeedback(gen, _folder(tmp_path), FeedbackConfig(), {})
    live = gen.table.live()[0].instruction
    batch = [
        Record("a", live),  # a copy of a seed: ROUGE-L 1.0
        Record("b", "Sketch a timetable for a lighthouse keeper's week of night shifts."),
        Record("c", "Sketch a timetable for a lighthouse keeper's week of night duties."),
    ]
    got = fb.candidates(batch)
    # 'c' is too close to 'b', which became a candidate first
    assert [s.id for s in got] == ["fb-b"] and isinstance(got[0], SeedTask)


def _folder(path: Path) -> Any:
    from tunesmith.train.folder import TrainFolder

    return TrainFolder.open(path / "f", method="t", config={})


def test_highest_grad_norm_batch_replaces_the_lowest_scoring_seeds(
    tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    summary = _loop(out, tiny_model, FakeBackend(responses=responder))
    log = {r["step"]: r for r in _rows(out, "train_log.jsonl")}
    steps = {r["step"]: r["ids"] for r in _rows(out, "step_rows.jsonl")}
    history = _rows(out, "seed_history.jsonl")
    assert summary["steps"] == 10 and summary["seed_replacements"] == len(history) >= 1
    assert [h["step"] for h in history] == [6, 9]  # every 3 steps, the first period skipped
    for h in history:
        window = range(h["step"] - EVERY + 1, h["step"] + 1)
        best = max(window, key=lambda s: log[s]["grad_norm"])
        assert (h["chosen_step"], h["grad_norm"]) == (best, log[best]["grad_norm"])
        assert h["batch"] == steps[best]
        assert {a["id"] for a in h["added"]} <= {f"fb-{i}" for i in steps[best]}
        assert len(h["evicted"]) == len(h["added"])
        # only seeds that already have a SeedKept/SeedGen score are evicted, with it recorded
        assert all(e["seed_gen"] > 0 and e["score"] is not None for e in h["evicted"])
    scores = {r["id"] for r in json.loads((out / "seed_scores.json").read_text())}
    added = {a["id"] for h in history for a in h["added"]}
    evicted = {e["id"] for h in history for e in h["evicted"]}
    assert added - evicted <= scores and not (evicted - added) & scores
    # generation after a replacement samples only from the updated seed set
    kept = _rows(out, "kept.jsonl")
    first = history[0]
    gone = {e["id"] for e in first["evicted"]}
    later = [r for r in kept if r["meta"]["round"] >= first["round"]]
    assert later and not any(gone & set(r["meta"]["seed_ids"]) for r in later)
    assert any({a["id"] for a in first["added"]} & set(r["meta"]["seed_ids"]) for r in later)
    # one diverse batch per step, each row trained once, in stream order
    trained = [i for s in sorted(steps) for i in steps[s]]
    assert all(len(ids) == BATCH for ids in steps.values()) and len(set(trained)) == len(trained)
    assert (out / "model" / "config.json").exists()


class _Killed(Exception):
    pass


def test_interrupted_loop_resumes_without_repeating_calls_or_steps(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight_backend = FakeBackend(responses=responder)
    _loop(tmp_path / "straight", tiny_model, straight_backend, use_cache=False)

    real = fb_mod.FeedbackCallback.on_log

    def dies_at(kill: int) -> Any:
        def dying(self: Any, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any):
            real(self, args, state, control, logs=logs, **kw)
            if state.global_step == kill:
                raise _Killed

        return dying

    out = tmp_path / "run"
    backends = [FakeBackend(responses=responder) for _ in range(3)]
    # 1st: killed at step 5 (checkpoint 4): step 6 decides after resume from a window that
    #      starts before the checkpoint (refilled from the log);
    # 2nd: killed at step 9 (checkpoint 8, step 9 decided): the stream re-applies step 6's
    #      replacement from the journal while the trainer skips, and step 9 is re-applied
    for kill, backend in zip((5, 9), backends, strict=False):
        monkeypatch.setattr(fb_mod.FeedbackCallback, "on_log", dies_at(kill))
        with pytest.raises(_Killed):
            _loop(out, tiny_model, backend)
    monkeypatch.setattr(fb_mod.FeedbackCallback, "on_log", real)
    _loop(out, tiny_model, backends[2])

    assert sum(b.calls for b in backends) == straight_backend.calls  # no call paid twice
    got = [(r["step"], r["loss"]) for r in _rows(out, "train_log.jsonl")]
    want = [(r["step"], r["loss"]) for r in _rows(tmp_path / "straight", "train_log.jsonl")]
    assert [s for s, _ in got] == list(range(1, 11))
    assert [loss for _, loss in got] == pytest.approx([loss for _, loss in want], abs=1e-6)
    strip = ("t",)
    a = [{k: v for k, v in h.items() if k not in strip} for h in _rows(out, "seed_history.jsonl")]
    b = [{k: v for k, v in h.items() if k not in strip} for h in _rows(tmp_path / "straight", "seed_history.jsonl")]  # fmt: skip
    assert a == b
    assert _rows(out, "step_rows.jsonl") == _rows(tmp_path / "straight", "step_rows.jsonl")
    # each replacement logged once, although the resumed stream re-applied the first one
    events = [e for e in _rows(out, "events.jsonl") if e.get("stage") == "seed_replacement"]
    assert len(events) == len(a)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["resumed"] == 2
