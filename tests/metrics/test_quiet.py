"""quiet_libraries: third-party chatter is dropped inside the block and everything is restored."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
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


def test_transformers_verbosity_is_restored_when_it_was_loaded_before() -> None:
    """The order-dependent failure: with transformers imported by an earlier test, the block put
    its verbosity back as ERROR (it was read after the block had raised the logger's level)."""
    tf_logging = pytest.importorskip("transformers.utils.logging")
    logger = logging.getLogger("transformers")
    before = (logger.level, tf_logging.get_verbosity())
    with quiet_libraries():
        assert tf_logging.get_verbosity() == logging.ERROR
    assert (logger.level, tf_logging.get_verbosity()) == before


def test_a_first_import_of_tqdm_inside_the_block_leaves_later_bars_on() -> None:
    """tqdm takes the environment it sees at import as its defaults: a fresh process shows that
    the block's TQDM_DISABLE does not outlive it."""
    code = (
        "import os, sys\n"
        "os.environ.pop('TQDM_DISABLE', None)\n"
        "from tunesmith.metrics.quiet import quiet_libraries\n"
        "with quiet_libraries():\n"
        "    from tqdm import tqdm\n"
        "print(tqdm(range(2), desc='after the block', file=sys.stdout).disable)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout
