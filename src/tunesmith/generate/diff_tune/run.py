"""Running DiffTune generation into a run folder on the RunDriver (rounds, then responses).

``state.json`` holds the sampling rounds done and the instructions awaiting responses, so a
killed run resumes without resampling; see :class:`tunesmith.generate.diff_tune.DiffTune`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesmith.driver import RunDriver
from tunesmith.generate.diff_tune import DiffTune
from tunesmith.llm.base import Backend
from tunesmith.llm.factory import LLMConfig
from tunesmith.records import Record


def run_difftune(
    gen: DiffTune, out: str | Path, *, config: LLMConfig | None = None,
    backend: Backend | None = None, force_new: bool = False, retry_failed: bool = False,
) -> RunDriver:  # fmt: skip
    """Run ``gen`` into the run folder ``out`` (rerun to resume: finished rounds are not redone).

    ``state.json`` holds the rounds done and the instructions awaiting responses; the driver
    writes kept, rejected and failed rows, the ledger and one event per round and batch.
    """
    run_config = {"params": gen.config(), "llm": config.to_manifest() if config else None}
    with RunDriver.open(out, method="difftune", config=run_config, force_new=force_new,
                        retry_failed=retry_failed,
                        resumable=("num_instructions", "max_rounds")) as driver:  # fmt: skip
        gen.setup()
        pending, round_no = sample_rounds(gen, driver)
        summary: dict[str, Any] = {"rounds": round_no, "instructions": len(pending)}
        if gen.respond and config is not None:
            respond_all(gen, driver, pending, config, backend)
        else:
            driver.write_kept(pending)
        driver.finish("done", **summary, **driver.counts())
    return driver


def sample_rounds(gen: DiffTune, driver: RunDriver) -> tuple[list[Record], int]:
    """Sample and curate until ``num_instructions`` pass or ``max_rounds`` (DiffTune: ~2)."""
    state = driver.run.load_state()
    pending = [Record(**r) for r in state.get("pending", [])]
    round_no = int(state.get("round", 0))
    while len(pending) < gen.num_instructions and round_no < gen.max_rounds:
        cands = gen.candidates(round_no, gen.num_instructions - len(pending))
        result = gen.curate(cands, [r.instruction.strip().lower() for r in pending])
        pending += result.kept
        event = {"batch": round_no, "generated": len(cands), "passed": len(result.kept),
                 "total": len(pending)}  # fmt: skip
        driver.report(result, "sample", keep=False, event=event)
        round_no += 1
        driver.run.save_state({"round": round_no, "pending": [r.to_dict() for r in pending]})
    return pending[: gen.num_instructions], round_no


def respond_all(
    gen: DiffTune, driver: RunDriver, pending: list[Record], config: LLMConfig,
    backend: Backend | None,
) -> None:  # fmt: skip
    """Responses in batches of 16, each batch's rows and ledger saved before the next."""
    done = driver.done_ids()
    todo = [r for r in pending if r.id not in done]
    llm = driver.make_llm(config, backend=backend)
    try:
        for start in range(0, len(todo), 16):
            driver.report(gen.responses(todo[start : start + 16], llm), "respond")
    finally:
        llm.close()
