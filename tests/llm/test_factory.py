"""Shared client settings map onto each backend's own options in one place (llm/factory.py)."""

from __future__ import annotations

import pytest

from tunesmith.errors import ConfigError
from tunesmith.llm.factory import config_from_options, make_llm, parse_backend_options


def test_openai_gets_server_settings_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    config = config_from_options(backend="openai", model="m", concurrency=64, rpm=600)
    assert config.options == {
        "base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY",
        "concurrency": 64, "rpm": 600,
    }  # fmt: skip
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert config_from_options(backend="openai", model="m").options["base_url"].endswith(":9/v1")


def test_local_backends_get_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNESMITH_THREADS", "3")
    assert config_from_options(backend="embedded").options == {"threads": 3}
    assert config_from_options(backend="transformers", threads=2).options == {"threads": 2}
    assert config_from_options(backend="fake").options == {}


@pytest.mark.parametrize(
    ("backend", "setting"),
    [("embedded", {"rpm": 60}), ("fake", {"base_url": "http://x/v1"}), ("openai", {"threads": 2})],
)
def test_a_setting_the_backend_does_not_take_is_an_error(backend: str, setting: dict) -> None:
    flag = "--" + next(iter(setting)).replace("_", "-")
    with pytest.raises(ConfigError, match=f"{flag} does not apply to the {backend} backend"):
        config_from_options(backend=backend, model="m", **setting)


def test_backend_options_are_typed_and_checked_by_the_backend() -> None:
    assert parse_backend_options(["n_ctx=4096", "x=0.5", "flag=true", "name=a=b"]) == {
        "n_ctx": 4096, "x": 0.5, "flag": True, "name": "a=b",
    }  # fmt: skip
    with pytest.raises(ConfigError, match="must be KEY=VALUE"):
        parse_backend_options(["n_ctx"])
    config = config_from_options(backend="embedded", backend_options={"n_ctxx": 1})
    with pytest.raises(ConfigError, match="n_ctx"):
        make_llm(config)
