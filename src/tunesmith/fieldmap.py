"""Field maps: which column of a user's file feeds which field of a Record.

``instruction=prompt,output=response`` on the command line (``--map``), or a mapping under a
recipe's ``map:`` key; fields a map does not name are still detected by :mod:`tunesmith.formats`.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator, Mapping, Sequence

from tunesmith.errors import ConfigError

# Where a field map can send a column.
TARGETS = ("instruction", "input", "output", "id", "system")


@dataclasses.dataclass(frozen=True)
class FieldMap(Mapping[str, str]):
    """Which column feeds which record field, e.g. ``instruction=prompt,output=response``.

    Targets are ``instruction``, ``input``, ``output``, ``id`` and ``system``; sources are column
    names of the row, matched exactly. Fields the map does not name are still detected.
    """

    pairs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for target, source in self.pairs:
            if target not in TARGETS:
                close = difflib.get_close_matches(target, TARGETS, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(
                    f"field map: unknown target '{target}'{hint}; targets: {', '.join(TARGETS)}"
                )
            if not source:
                raise ConfigError(f"field map: '{target}=' names no column")
            if target in seen:
                raise ConfigError(f"field map: '{target}' is mapped twice")
            seen.add(target)

    @classmethod
    def parse(cls, text: str) -> FieldMap:
        """Parse ``"instruction=prompt,output=response"`` (spaces around names are ignored)."""
        pairs = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            target, sep, source = part.partition("=")
            if not sep:
                raise ConfigError(
                    f"field map: '{part}' must be TARGET=COLUMN, e.g. instruction=prompt"
                )
            pairs.append((target.strip(), source.strip()))
        return cls(tuple(pairs))

    @classmethod
    def of(cls, value: str | Mapping[str, str] | Sequence[str] | None) -> FieldMap:
        """A FieldMap from a string, a mapping (a recipe's ``map:``) or repeated ``--map`` values."""
        if value is None:
            return cls()
        if isinstance(value, FieldMap):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, Mapping):
            return cls(tuple((str(k), str(v)) for k, v in value.items()))
        return cls.parse(",".join(value))

    def __getitem__(self, key: str) -> str:
        for target, source in self.pairs:
            if target == key:
                return source
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(t for t, _ in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __str__(self) -> str:
        return ",".join(f"{t}={s}" for t, s in self.pairs)
