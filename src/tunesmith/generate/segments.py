"""Unlabelled documents for instruction backtranslation: reading them and cutting segments.

Humpback (Li et al. 2023, "Self-Alignment with Instruction Backtranslation") predicts an
instruction for self-contained text segments of web documents. Public re-runs of the method kept
documents of 1,000-2,200 characters in which no line is shorter than 5 characters (menus, page
numbers and list debris are what such lines usually are); those are the defaults here, and every
bound is settable. Documents outside the bounds are not used; each is reported with the reason.
With ``split_long`` a longer document is cut at paragraph (then sentence) boundaries into
segments within the bounds instead of being dropped.

Documents come from JSONL/JSON/Parquet/``datasets`` files (one document per row, read from a
text column), plain ``.txt``/``.md`` files (one document per file), or a folder of any of those.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError
from tunesmith.records import Record, stable_id

#: Columns tried, in order, for a document's text when no ``text_field`` is given.
TEXT_FIELDS = ("text", "content", "document", "output", "response", "body")
TEXT_SUFFIXES = (".txt", ".md", ".text")
ROW_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet", ".pq")
SHORT_LINE_RULES = ("reject", "drop")


@dataclasses.dataclass(frozen=True)
class Document:
    """One unlabelled document and where it came from (file stem and 0-based row)."""

    text: str
    source: str
    row: int


@dataclasses.dataclass(frozen=True)
class SegmentRules:
    """How documents become segments (Humpback re-runs: 1,000-2,200 chars, lines >= 5 chars).

    Attributes:
        min_chars, max_chars: a segment's length bounds in characters (after normalising).
        min_line_chars: shortest non-blank line allowed (0 = no rule).
        short_lines: ``reject`` the document when it has a shorter line (the reference) or
            ``drop`` those lines and keep the rest.
        split_long: cut documents over ``max_chars`` into segments instead of rejecting them.
    """

    min_chars: int = 1000
    max_chars: int = 2200
    min_line_chars: int = 5
    short_lines: str = "reject"
    split_long: bool = False

    def __post_init__(self) -> None:
        from tunesmith.errors import ConfigError

        if self.short_lines not in SHORT_LINE_RULES:
            raise ConfigError(f"short_lines must be one of {', '.join(SHORT_LINE_RULES)}")
        if not 0 <= self.min_chars <= self.max_chars:
            raise ConfigError(f"need 0 <= min_chars <= max_chars, got {self.min_chars}, "
                              f"{self.max_chars}")  # fmt: skip


def read_documents(
    path: str | os.PathLike[str], *, text_field: str | None = None
) -> list[Document]:
    """Every document under ``path`` (a file or a folder, read in sorted order).

    Raises:
        DataError: ``file:line: ...`` for a row without the text column, no documents at all.
    """
    root = Path(path)
    if not root.exists():
        raise DataError(root, None, "no such file or folder")
    files = [root] if root.is_file() or _is_datasets_folder(root) else _files_under(root)
    docs = [doc for f in files for doc in _read_file(f, text_field)]
    if not docs:
        raise DataError(root, None, "no documents to read")
    return docs


def _is_datasets_folder(path: Path) -> bool:
    return path.is_dir() and (path / "dataset_info.json").exists()


def _files_under(folder: Path) -> list[Path]:
    wanted = TEXT_SUFFIXES + ROW_SUFFIXES
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in wanted)


def _read_file(path: Path, text_field: str | None) -> Iterator[Document]:
    if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(path, None, f"not UTF-8 text ({exc.reason})") from None
        if text.strip():
            yield Document(text, path.stem, 0)
        return
    from tunesmith.io import iter_rows

    for i, (line, row) in enumerate(iter_rows(path)):
        text = _row_text(row, text_field, path, line)
        if text.strip():
            yield Document(text, path.stem if path.is_file() else path.name, i)


def _row_text(row: Mapping[str, Any], field: str | None, path: Path, line: int) -> str:
    names = (field,) if field else TEXT_FIELDS
    for name in names:
        value = row.get(name)
        if isinstance(value, str):
            return value
    wanted = f"'{field}'" if field else "one of " + ", ".join(TEXT_FIELDS)
    raise DataError(path, line, f"no text column ({wanted}); name it with --text-field")


# -- segmenting ----------------------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def normalise(text: str) -> str:
    """Unix newlines, no trailing spaces, at most one blank line between paragraphs."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def segment(text: str, rules: SegmentRules) -> tuple[list[str], str]:
    """The segments of one document, or ``([], reason)`` when it yields none."""
    text = normalise(text)
    if rules.min_line_chars > 0:
        short = [
            ln for ln in text.split("\n") if ln.strip() and len(ln.strip()) < rules.min_line_chars
        ]
        if short and rules.short_lines == "reject":
            return [], f"a line under {rules.min_line_chars} characters ({short[0].strip()!r})"
        if short:
            text = normalise("\n".join(ln for ln in text.split("\n") if ln not in short))
    if len(text) > rules.max_chars and rules.split_long:
        pieces = [p for p in _pack(text, rules.max_chars) if len(p) >= rules.min_chars]
        return (pieces, "") if pieces else ([], f"no piece of {rules.min_chars}+ characters")
    if len(text) > rules.max_chars:
        return [], f"{len(text)} characters > {rules.max_chars}"
    if len(text) < rules.min_chars:
        return [], f"{len(text)} characters < {rules.min_chars}"
    return [text], ""


def _pack(text: str, limit: int) -> list[str]:
    """Greedily join paragraphs (sentences, then words, for an oversized one) up to ``limit``."""
    units: list[str] = []
    for para in text.split("\n\n"):
        units.extend(_split_unit(para, limit))
    out: list[str] = []
    current = ""
    for unit in units:
        joined = f"{current}\n\n{unit}" if current else unit
        if len(joined) <= limit:
            current = joined
        else:
            out.append(current)
            current = unit
    if current:
        out.append(current)
    return [p for p in out if p]


def _split_unit(para: str, limit: int) -> list[str]:
    if len(para) <= limit:
        return [para]
    out: list[str] = []
    current = ""
    for piece in _SENTENCE_END.split(para):
        while len(piece) > limit:  # one "sentence" longer than a segment: cut at a space
            cut = piece.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            out.append(piece[:cut].strip())
            piece = piece[cut:].strip()
        joined = f"{current} {piece}" if current else piece
        if len(joined) <= limit:
            current = joined
        else:
            out.append(current)
            current = piece
    if current:
        out.append(current)
    return [p for p in out if p]


def segment_records(
    docs: list[Document], rules: SegmentRules
) -> tuple[list[Record], list[tuple[Record, str]]]:
    """Segments as records to label (empty instruction, the text as ``output``), and rejected
    documents or segments with the reason. Ids are stable: (source, row, segment index). A
    segment whose text repeats an earlier one is rejected (Humpback deduplicates its corpus)."""
    kept: list[Record] = []
    rejected: list[tuple[Record, str]] = []
    first: dict[str, str] = {}
    for doc in docs:
        pieces, why = segment(doc.text, rules)
        meta = {"source": doc.source, "row": doc.row, "method": "backtranslation"}
        if not pieces:
            rec = Record(id=stable_id("doc", doc.source, doc.row), instruction="",
                         output=doc.text, meta=meta)  # fmt: skip
            rejected.append((rec, why))
        for j, piece in enumerate(pieces):
            rid = stable_id("segment", doc.source, doc.row, j)
            rec = Record(id=rid, instruction="", output=piece, meta={**meta, "segment": j})
            if piece in first:
                rejected.append((rec, f"duplicate of segment {first[piece]}"))
                continue
            first[piece] = rid
            kept.append(rec)
    return kept, rejected
