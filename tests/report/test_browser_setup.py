"""The browser tests' Chromium setup: a machine that cannot install it skips, with the reason."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.report import test_browser


def test_no_chromium_and_a_failing_install_is_a_skip_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None)  # fmt: skip
    monkeypatch.setattr(test_browser.os, "geteuid", lambda: 0)

    def failing(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package chromium\n")

    monkeypatch.setattr(subprocess, "run", failing)
    with pytest.raises(pytest.skip.Exception, match="Unable to locate package chromium"):
        test_browser._chromium()


def test_no_chromium_and_no_apt_is_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        test_browser._chromium()
