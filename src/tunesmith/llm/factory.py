"""Build backends and clients from names and options (CLI flags, recipes, the Python API)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunesmith.llm.base import Backend
from tunesmith.llm.cache import RequestCache, default_cache_path
from tunesmith.llm.client import LLM, ProgressHook
from tunesmith.llm.usage import Budget, Ledger, PriceTable
from tunesmith.registry import Registry

BACKENDS: Registry[type[Backend]] = Registry("backend")
BACKENDS.register("embedded", "tunesmith.llm.embedded:EmbeddedBackend")
BACKENDS.register("openai", "tunesmith.llm.openai_compat:OpenAICompatBackend")
BACKENDS.register("transformers", "tunesmith.llm.transformers:TransformersBackend")
BACKENDS.register("fake", "tunesmith.llm.fake:FakeBackend")

#: The model each backend uses when none is named.
DEFAULT_MODELS = {
    "embedded": "smollm2-135m-instruct",
    "transformers": "smollm2-135m-instruct",
    "fake": "fake-model",
}

#: The shared client settings (CLI flags, recipe keys) each backend takes. Setting one a backend
#: does not take is an error, not a silent no-op (``--rpm`` means nothing to the embedded model).
SHARED_SETTINGS: dict[str, tuple[str, ...]] = {
    "openai": ("base_url", "api_key_env", "concurrency", "rpm", "tpm"),
    "embedded": ("threads",),
    "transformers": ("threads",),
    "fake": (),
}


@dataclasses.dataclass
class LLMConfig:
    """Everything needed to build a client; stored (minus secrets) in run manifests.

    ``options`` are backend-specific keyword arguments (base_url, api_key_env, threads,
    concurrency, rpm, tpm, timeout ...); each backend rejects keys it does not know.
    """

    backend: str = "embedded"
    model: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    cache_path: str | None = None
    use_cache: bool = True
    prices_path: str | None = None
    max_cost: float | None = None
    max_calls: int | None = None

    def resolved_model(self) -> str:
        BACKENDS.get(self.backend)  # an unknown backend name fails here, with "did you mean"
        if self.model:
            return self.model
        if self.backend in DEFAULT_MODELS:
            return DEFAULT_MODELS[self.backend]
        from tunesmith.errors import ConfigError

        raise ConfigError(f"backend '{self.backend}' needs --model")

    def to_manifest(self) -> dict[str, Any]:
        """The config as stored in run manifests: credentials in a URL are masked."""
        d = dataclasses.asdict(self)
        d["model"] = self.resolved_model()
        if isinstance(d["options"].get("base_url"), str):
            d["options"]["base_url"] = _mask_credentials(d["options"]["base_url"])
        return d


def config_from_options(
    *,
    backend: str,
    model: str | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
    threads: int | None = None,
    concurrency: int | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    backend_options: Mapping[str, Any] | None = None,
    cache_path: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    prices_path: str | os.PathLike[str] | None = None,
    max_cost: float | None = None,
    max_calls: int | None = None,
) -> LLMConfig:
    """The LLMConfig for the shared client settings: each backend gets only the settings it takes.

    Args:
        backend: a registered backend name (unknown names fail with "did you mean").
        base_url, api_key_env, concurrency, rpm, tpm: openai-compatible servers; ``base_url``
            defaults to ``$OPENAI_BASE_URL`` or OpenAI's, ``api_key_env`` to ``OPENAI_API_KEY``.
        threads: CPU threads of local backends (default ``$TUNESMITH_THREADS`` or 1).
        backend_options: further backend keyword options (``-O key=value``), checked by the backend.
        cache_path, use_cache, prices_path, max_cost, max_calls: client settings.

    Raises:
        ConfigError: a setting was given that ``backend`` does not take.
    """
    BACKENDS.get(backend)
    given = {"base_url": base_url, "api_key_env": api_key_env, "threads": threads,
             "concurrency": concurrency, "rpm": rpm, "tpm": tpm}  # fmt: skip
    options = {**backend_settings(backend, given), **(backend_options or {})}
    return LLMConfig(
        backend=backend, model=model, options=options,
        cache_path=str(cache_path) if cache_path else None, use_cache=use_cache,
        prices_path=str(prices_path) if prices_path else None,
        max_cost=max_cost, max_calls=max_calls,
    )  # fmt: skip


def backend_settings(backend: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The shared settings ``backend`` takes (a given one it does not take is an error), with
    the defaults of the openai (base URL, key variable) and local backends (threads) filled in."""
    from tunesmith.errors import ConfigError

    takes = SHARED_SETTINGS.get(backend)
    options: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:
            continue
        if takes is not None and key not in takes:  # plugins (takes None) get what is given
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{flag} does not apply to the {backend} backend")
        options[key] = value
    if backend == "openai":
        options.setdefault(
            "base_url", os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
        )
        options.setdefault("api_key_env", "OPENAI_API_KEY")
    elif backend in ("embedded", "transformers"):
        options.setdefault("threads", int(os.environ.get("TUNESMITH_THREADS", "1")))
    return options


def parse_backend_options(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict; values that look like numbers or booleans are converted."""
    from tunesmith.errors import ConfigError

    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"backend option '{pair}' must be KEY=VALUE")
        out[key] = _typed(raw)
    return out


def _typed(raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            continue
    return raw


def _mask_credentials(url: str) -> str:
    """``https://user:secret@host/v1`` -> ``https://***@host/v1`` (keys never reach a manifest)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def make_backend(name: str, model: str, options: Mapping[str, Any] | None = None) -> Backend:
    """Instantiate a registered backend; unknown names and option keys raise ConfigError."""
    cls = BACKENDS.get(name)
    return cls(model=model, **dict(options or {}))  # type: ignore[call-arg]


def make_llm(
    config: LLMConfig,
    *,
    ledger: Ledger | None = None,
    on_progress: ProgressHook | None = None,
    backend: Backend | None = None,
) -> LLM:
    """Build the cached, budgeted client described by ``config``."""
    backend = backend or make_backend(config.backend, config.resolved_model(), config.options)
    cache = (
        RequestCache(Path(config.cache_path) if config.cache_path else default_cache_path())
        if config.use_cache
        else None
    )
    prices = PriceTable.from_file(config.prices_path) if config.prices_path else PriceTable()
    budget = Budget(max_cost=config.max_cost, max_calls=config.max_calls)
    return LLM(
        backend, cache=cache, ledger=ledger, prices=prices, budget=budget, on_progress=on_progress
    )
