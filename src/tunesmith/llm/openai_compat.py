"""Any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, llama.cpp's server, TGI, LiteLLM ...

Chat requests go to ``/chat/completions``, raw prompts to ``/completions``. Requests fan out on
an asyncio event loop (httpx) under a concurrency cap, paced by optional requests-per-minute and
tokens-per-minute buckets, and retried with exponential backoff and jitter on 429, 5xx,
timeouts and connection errors, honouring Retry-After; a 200 answer without ``choices`` (a
proxy's ``{"error": ...}``) is retried like an invalid body. ``complete`` stays synchronous for
callers and hands each finished request to ``on_done`` at once, so the request cache keeps it
even if a later request fails for good. The client's budget is asked right before each request
is sent (``admit``), so a budget counts the requests in flight.

A request the server refuses for good (HTTP 400 such as a context-length error or a content
filter, 413, 422, or a 404 whose JSON error names the model) comes back as a completion with
``error`` set, and the other requests go on. Errors about the whole run raise
:class:`~tunesmith.errors.BackendError`: the server unreachable after every retry, 401/403 (a bad
key), or a 404 for the path itself (with a hint when the base URL lacks ``/v1``).

The API key is read from the environment variable named by ``api_key_env`` when the first
batch is sent; it is never stored in manifests, logs or error messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from tunesmith.errors import BackendError, ConfigError
from tunesmith.llm.base import Admit, Backend, Completion, OnDone, Request, check_options
from tunesmith.llm.embedded import sample_seed
from tunesmith.llm.http import TransportError, make_slots
from tunesmith.llm.openai_wire import Refused, names_model, parse_choices, public_url, read_answer
from tunesmith.llm.ratelimit import Pause, TokenBucket, backoff_delay, retry_after_seconds

_OPTIONS = (
    "base_url",
    "api_key_env",
    "concurrency",
    "rpm",
    "tpm",
    "timeout",
    "max_retries",
    "backoff_base",
    "backoff_max",
    "http_client",
)
_RETRY_STATUSES = {408, 409, 425, 429}
#: statuses that concern one request (its size, content or model), not the whole run
_PER_REQUEST_STATUSES = {400, 404, 413, 422}
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class OpenAICompatBackend(Backend):
    """An OpenAI-compatible HTTP API.

    Args:
        model: the model name sent to the server.
        base_url: e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``.
        api_key_env: name of the environment variable holding the key. A loopback URL works
            without one; a remote URL without it fails before any request.
        concurrency: requests in flight at once.
        rpm, tpm: requests / tokens per minute (tokens estimated as prompt chars / 4 plus
            max_tokens per sample); None for no limit.
        timeout: seconds per HTTP request.
        max_retries: retries after the first try of one request.
        backoff_base, backoff_max: exponential backoff (seconds) between retries.
        http_client: ``native`` (lean keep-alive HTTP/1.1, see :mod:`tunesmith.llm.http`),
            ``httpx``, or ``auto`` (native unless an HTTP proxy is configured for the host).
    """

    name = "openai"
    is_local = False
    admits = True

    def __init__(
        self,
        model: str,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        rpm: float | None = None,
        tpm: float | None = None,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        http_client: str = "auto",
        **unknown: Any,
    ) -> None:
        check_options("openai", unknown, _OPTIONS)
        super().__init__(model)
        self.base_url = str(base_url).rstrip("/")
        self.api_key_env = api_key_env
        self.concurrency = max(1, int(concurrency))
        self.rpm = float(rpm) if rpm else None
        self.tpm = float(tpm) if tpm else None
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        if http_client not in ("auto", "native", "httpx"):
            raise ConfigError(f"http_client must be auto, native or httpx, not '{http_client}'")
        self.http_client = http_client
        #: HTTP responses with status 200, counted (tests and benchmarks read it).
        self.responses = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._slots: asyncio.Queue[Any] | None = None

    # -- setup -----------------------------------------------------------------------------------
    def _api_key(self) -> str | None:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            return key
        host = urllib.parse.urlsplit(self.base_url).hostname or ""
        if host in _LOOPBACK or host.startswith("127."):
            return None
        raise BackendError(
            f"environment variable {self.api_key_env} is not set; it must hold the API key for "
            f"{public_url(self.base_url)} (or use --api-key-env NAME)"
        )

    def setup(self) -> None:
        self._api_key()  # a missing key fails here, before the first request

    def endpoint(self) -> str:
        """The base URL (no credentials, lower-case scheme and host, no trailing slash)."""
        parts = urllib.parse.urlsplit(public_url(self.base_url))
        return urllib.parse.urlunsplit(
            parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower())
        ).rstrip("/")

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "base_url": public_url(self.base_url),
            "api_key_env": self.api_key_env,
            "concurrency": self.concurrency,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }

    # -- the batch -------------------------------------------------------------------------------
    def complete(
        self, requests: Sequence[Request], on_done: OnDone, admit: Admit | None = None
    ) -> None:
        """Runs the batch on the backend's own event-loop thread (so keep-alive connections,
        rate buckets and pauses carry over between batches) and calls ``on_done`` on the
        caller's thread as each request finishes: the loop goes straight back to sending while
        the caller stores results, and ``on_done`` never needs to be thread-safe.

        ``admit(i)`` (thread-safe) is asked right before request ``i`` is first sent: "send",
        "wait" (ask again shortly) or "stop" (no further request is started, and ``complete``
        returns when those in flight are done)."""
        key = self._api_key()
        finished: queue.SimpleQueue[tuple[int, list[Completion]] | None] = queue.SimpleQueue()
        future = asyncio.run_coroutine_threadsafe(
            self._run(list(requests), finished.put, key, admit), self._event_loop()
        )
        future.add_done_callback(lambda _: finished.put(None))
        try:
            while (item := finished.get()) is not None:
                on_done(*item)
            future.result()
        except BaseException:
            future.cancel()
            raise

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="tunesmith-openai", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close_slots(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()

    async def _close_slots(self) -> None:
        slots, self._slots = self._slots, None
        while slots is not None and not slots.empty():
            await slots.get_nowait().aclose()

    async def _run(
        self,
        requests: list[Request],
        deliver: Callable[[tuple[int, list[Completion]]], None],
        key: str | None,
        admit: Admit | None = None,
    ) -> None:
        if self._slots is None:  # first batch: connections open lazily, one per slot
            self._rpm_bucket = TokenBucket(self.rpm) if self.rpm else None
            self._tpm_bucket = TokenBucket(self.tpm) if self.tpm else None
            self._pause = Pause()
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            self._slots = asyncio.Queue()
            for slot in make_slots(
                self.base_url, headers, self.timeout, self.concurrency, self.http_client
            ):
                self._slots.put_nowait(slot)
        slots = self._slots
        errors: list[BaseException] = []
        refused: list[int] = []
        todo = iter(enumerate(requests))

        async def worker() -> None:
            # One worker per slot pulls requests until none are left: no task per request.
            slot = await slots.get()
            try:
                for i, request in todo:
                    if errors or refused:  # after a whole-run failure or a budget stop
                        return
                    if admit is not None and not await _admitted(admit, i):
                        refused.append(i)
                        return
                    try:
                        completions = await self._samples(slot, request)
                    except Exception as exc:
                        errors.append(exc)
                        return
                    deliver((i, completions))
            finally:
                slots.put_nowait(slot)

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(requests)))))
        if errors:
            raise errors[0]

    async def _samples(self, slot: Any, request: Request) -> list[Completion]:
        """All ``request.n`` samples; servers that ignore ``n`` (llama.cpp) get follow-ups.

        A request refused for good gives one completion with ``error`` set (the samples already
        answered are kept before it)."""
        out: list[Completion] = []
        while len(out) < request.n:
            body = self._body(request, request.n - len(out), len(out))
            path = "/chat/completions" if request.messages is not None else "/completions"
            est = request.prompt_chars() / 4 + request.params.max_tokens * body["n"]
            try:
                data, latency = await self._post(slot, path, body, est)
            except Refused as refusal:
                if out:  # answered samples are paid and kept; the rest fail next time
                    return out
                return [Completion.failed(refusal.message, refusal.status, refusal.latency)]
            choices = parse_choices(data, request.messages is not None, latency)
            out.extend(choices[: request.n - len(out)])
        return out

    def _body(self, request: Request, n: int, offset: int) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "n": n,
            "presence_penalty": p.presence_penalty,
            "frequency_penalty": p.frequency_penalty,
            # A seed per sample offset keeps follow-up requests from repeating the first sample.
            "seed": sample_seed(request, offset),
        }
        if p.stop:
            body["stop"] = list(p.stop)
        if request.messages is not None:
            body["messages"] = [dict(m) for m in request.messages]
            if p.logprobs or p.top_logprobs:
                body["logprobs"] = True
            if p.top_logprobs:
                body["top_logprobs"] = p.top_logprobs
        else:
            body["prompt"] = request.prompt
            if p.logprobs or p.top_logprobs:
                body["logprobs"] = max(1, p.top_logprobs)
        return body

    async def _post(
        self, slot: Any, path: str, body: dict[str, Any], tokens: float
    ) -> tuple[dict[str, Any], float]:
        """POST with pacing and retries; returns (JSON, latency of the successful try)."""
        url = self.base_url + path
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        problem, unreachable = "", False
        for attempt in range(self.max_retries + 1):
            await self._pause.wait()
            if self._rpm_bucket is not None:
                await self._rpm_bucket.acquire(1)
            if self._tpm_bucket is not None:
                await self._tpm_bucket.acquire(tokens)
            retry_after = None
            start = time.perf_counter()
            try:
                status, headers, content = await slot.post(url, payload)
            except TransportError as exc:
                problem = str(exc)
                unreachable = "connection" in problem or "timed out" in problem
            else:
                unreachable = False
                latency = time.perf_counter() - start
                if status == 200:
                    data, problem = read_answer(content)
                    if data is not None:
                        self.responses += 1
                        return data, latency
                elif status in _RETRY_STATUSES or status >= 500:
                    problem = f"HTTP {status}"
                    retry_after = retry_after_seconds(headers)
                    if retry_after is not None and status in (429, 503):
                        self._pause.extend(retry_after)
                else:
                    self._give_up(url, status, content, latency)
            if attempt < self.max_retries:
                delay = backoff_delay(
                    attempt, base=self.backoff_base, cap=self.backoff_max, retry_after=retry_after
                )
                await asyncio.sleep(delay)
        verb = "cannot reach" if unreachable else "failed:"
        raise BackendError(  # the problem may quote the server, which may echo the key: masked
            f"{verb} {public_url(self.base_url)}: {self._mask_key(problem)}"
            f" after {self.max_retries + 1} tries"
        )

    def _give_up(self, url: str, status: int, content: bytes, latency: float) -> NoReturn:
        """Raise :class:`Refused` for an error about this one request, else BackendError."""
        text = self._error_text(content)
        if status in _PER_REQUEST_STATUSES and (status != 404 or names_model(content)):
            raise Refused(status, f"HTTP {status}: {text}", latency)
        hint = ""
        if status == 404 and not urllib.parse.urlsplit(self.base_url).path.endswith("/v1"):
            # the most common cause: "http://host:8000" instead of "http://host:8000/v1"
            hint = f" (is the base URL missing /v1? try {public_url(self.base_url)}/v1)"
        raise BackendError(f"{public_url(url)}: HTTP {status}: {text}{hint}")

    def _error_text(self, content: bytes) -> str:
        text = content.decode("utf-8", "replace")
        try:
            data = json.loads(text)
            err = data.get("error") or data.get("detail") or text  # OpenAI's or FastAPI's form
            text = str(err.get("message", err) if isinstance(err, dict) else err)
        except (ValueError, AttributeError):
            pass
        return self._mask_key(" ".join(text.split())[:300] or "(empty body)")

    def _mask_key(self, text: str) -> str:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return text.replace(key, "***") if key else text


async def _admitted(admit: Admit, i: int) -> bool:
    """Ask the budget about request ``i``; while it says "wait" (answers still in flight may
    free room), ask again shortly."""
    while (verdict := admit(i)) == "wait":
        await asyncio.sleep(0.02)
    return verdict == "send"
