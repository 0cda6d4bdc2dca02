"""Judges are data: a YAML file names a Jinja prompt, a parser, a rule and sampling settings.

A judge file (``prompts/judges/<name>.yaml`` in the package, or any path a user passes)::

    description: one line for --help and reports
    prompt: pairwise.j2            # user turn, a Jinja file next to the YAML
    system: pairwise_system.j2     # optional system turn
    parser: verdict                # a name from tunesmith.judge.parsers.PARSERS
    rule: mt_bench                 # mt_bench | sedi | preference | grade
    both_orders: true              # judge (baseline, model) and (model, baseline)
    randomize_order: false         # one order, chosen per example by a seeded hash
    backend: openai                # default backend/model; CLI options override them
    model: gpt-4o-mini
    options: {}                    # backend options (base_url ...)
    sampling: {temperature: 0, max_tokens: 512, top_logprobs: 0}
    identifiers: [A, B]            # the names the prompt gives the two outputs
    scale: [1, 10]                 # score range for score parsers

Adding a judge is adding two files; no Python. The prompt sees ``instruction``, ``input``,
``output_1``, ``output_2`` (pairwise), ``output`` (single grading), ``reference`` and
``category`` (None when the set has none), ``id_1``/``id_2`` (the identifiers) and
``scale_low``/``scale_high``. This mirrors alpaca_eval's
annotator configs (YAML + prompt file) and FastChat's judge prompts (MT-bench, Zheng et al. 2023).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml

from tunesmith.errors import ConfigError
from tunesmith.llm.base import Request, SamplingParams
from tunesmith.records import text_hash

RULES = ("mt_bench", "sedi", "preference", "grade")
_KEYS = (
    "description", "prompt", "system", "parser", "rule", "both_orders", "randomize_order",
    "backend", "model", "options", "sampling", "identifiers", "scale",
)  # fmt: skip
_SAMPLING_KEYS = ("temperature", "max_tokens", "top_logprobs", "top_p", "seed")
_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
)


@dataclasses.dataclass(frozen=True)
class JudgeSpec:
    """A loaded judge: templates, parser and rule names, sampling, default backend."""

    name: str
    path: str
    prompt: str
    parser: str
    rule: str
    system: str | None = None
    description: str = ""
    both_orders: bool = False
    randomize_order: bool = False
    backend: str | None = None
    model: str | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sampling: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    identifiers: tuple[str, str] = ("A", "B")
    scale: tuple[float, float] = (1.0, 10.0)

    @property
    def is_pairwise(self) -> bool:
        return self.rule != "grade"

    @property
    def sha256(self) -> str:
        """Hash of everything that shapes a verdict (for manifests and resume checks)."""
        return text_hash(repr((self.prompt, self.system, self.parser, self.rule, self.sampling)))

    def params(self) -> SamplingParams:
        s = self.sampling
        return SamplingParams(
            temperature=float(s.get("temperature", 0.0)),
            top_p=float(s.get("top_p", 1.0)),
            max_tokens=int(s.get("max_tokens", 512)),
            top_logprobs=int(s.get("top_logprobs", 0)),
            seed=s.get("seed"),
        )

    def request(self, tag: str = "judge", **variables: Any) -> Request:
        """The chat request for one judgment; undeclared template variables are an error."""
        full = {
            "id_1": self.identifiers[0],
            "id_2": self.identifiers[1],
            "scale_low": _num(self.scale[0]),
            "scale_high": _num(self.scale[1]),
            **variables,
        }
        messages = []
        if self.system is not None:
            messages.append({"role": "system", "content": self._render(self.system, full)})
        messages.append({"role": "user", "content": self._render(self.prompt, full)})
        return Request.chat(messages, self.params(), tag=tag)

    def _render(self, source: str, variables: Mapping[str, Any]) -> str:
        try:
            return _compiled(source).render(**variables)
        except jinja2.UndefinedError as exc:
            raise ConfigError(f"{self.path}: prompt {exc.message}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"{self.path}: template line {exc.lineno}: {exc.message}") from None


@functools.lru_cache(maxsize=64)
def _compiled(source: str) -> jinja2.Template:
    # Compiling costs ~100x a render; a judge renders the same two templates for every pair.
    return _ENV.from_string(source)


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def packaged_judges() -> list[str]:
    """Names of the judges shipped in ``tunesmith/prompts/judges``."""
    folder = resources.files("tunesmith.prompts").joinpath("judges")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_judge(name_or_path: str | Path) -> JudgeSpec:
    """Load a packaged judge by name, or a user's judge from a ``.yaml`` path.

    Raises:
        ConfigError: unknown judge (with "did you mean"), unknown key, bad parser or rule name,
            or a missing template file; the message names the file.
    """
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ConfigError(f"{p}: no such judge file")
        return _from_yaml(p.read_text(encoding="utf-8"), p.stem, str(p), p.parent.joinpath)
    name = str(name_or_path)
    known = packaged_judges()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown judge '{name}'{hint}; known: {', '.join(known)}")
    folder = resources.files("tunesmith.prompts").joinpath("judges")
    text = folder.joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return _from_yaml(text, name, f"judges/{name}.yaml", folder.joinpath)


def _from_yaml(text: str, name: str, where: str, locate: Any) -> JudgeSpec:
    from tunesmith.judge.parsers import PARSERS

    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a judge file must be a mapping")
    _check_keys(raw, _KEYS, where)
    _check_keys(raw.get("sampling") or {}, _SAMPLING_KEYS, f"{where}: sampling")
    for key in ("prompt", "parser", "rule"):
        if key not in raw:
            raise ConfigError(f"{where}: missing key '{key}'")
    PARSERS.get(str(raw["parser"]))  # unknown parser -> ConfigError with "did you mean"
    if raw["rule"] not in RULES:
        raise ConfigError(f"{where}: rule must be one of {', '.join(RULES)}, got {raw['rule']!r}")
    ids = tuple(str(x) for x in raw.get("identifiers", ("A", "B")))
    scale = tuple(float(x) for x in raw.get("scale", (1, 10)))
    if len(ids) != 2 or ids[0] == ids[1] or len(scale) != 2 or scale[0] >= scale[1]:
        raise ConfigError(f"{where}: identifiers need two distinct names, scale [low, high]")
    return JudgeSpec(
        name=name,
        path=where,
        prompt=_template(locate, raw["prompt"], where),
        system=_template(locate, raw["system"], where) if raw.get("system") else None,
        parser=str(raw["parser"]),
        rule=str(raw["rule"]),
        description=str(raw.get("description", "")),
        both_orders=bool(raw.get("both_orders", False)),
        randomize_order=bool(raw.get("randomize_order", False)),
        backend=raw.get("backend"),
        model=raw.get("model"),
        options=dict(raw.get("options") or {}),
        sampling=dict(raw.get("sampling") or {}),
        identifiers=(ids[0], ids[1]),
        scale=(scale[0], scale[1]),
    )


def _template(locate: Any, filename: str, where: str) -> str:
    try:
        return str(locate(str(filename)).read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"{where}: template file '{filename}' not found") from None


def _check_keys(raw: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: unknown key '{key}'{hint}")
