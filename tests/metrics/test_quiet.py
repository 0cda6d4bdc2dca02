"""quiet_libraries: third-party chatter is dropped inside the block and everything is restored."""

from __future__ import annotations

import logging
import os
import warnings

import pytest

from tunesmith.metrics.quiet import quiet_libraries


def test_warnings_logs_and_progress_bars_are_silenced_then_restored(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    logger = logging.getLogger("transformers")
    level = logger.level
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_libraries():
            warnings.warn("a library's FutureWarning", FutureWarning, stacklevel=1)
            assert os.environ["TQDM_DISABLE"] == "1"
            assert logger.getEffectiveLevel() >= logging.ERROR
            from tqdm import tqdm

            for _ in tqdm(range(3), desc="Loading weights"):
                pass
        warnings.warn("ours, after the block", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["ours, after the block"]
    assert "Loading weights" not in capsys.readouterr().err
    assert "TQDM_DISABLE" not in os.environ and logger.level == level
