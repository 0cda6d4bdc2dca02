"""Datasets and their metadata for Dynosaur (Yin et al. 2023, "Dynosaur: A Dynamic Growth
Paradigm for Instruction-Tuning Data Curation").

Dynosaur shows an LLM a dataset's metadata (name, summary, fields, task tags and two sample rows)
instead of its rows. This module finds datasets (an HF ``datasets`` folder, a CSV/JSON/JSONL/
Parquet file, or a folder of them: the growth paradigm), reads their rows, and builds that
metadata as the paper does: fields whose name marks an identifier are hidden; long or nested
sample values are left out of the samples; the licence and source travel with the dataset.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError

DATA_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json", ".parquet", ".pq")
#: Card files looked for next to a data file (first match wins for the description).
CARD_PATTERNS = ("*card*.md", "*CARD*.md", "README.md", "readme.md", "SOURCE.md")
_ID_TOKEN = re.compile(r"(?:^|[_\W])(?:id|ids|uid|uuid|guid)(?:$|[_\W])|[a-z]Ids?$|^[a-z]?id$")
_LICENSES = [
    (re.compile(r"\bCC[- ]BY(?:[- ](?:SA|NC|ND))*[- ]\d\.\d\b", re.I), None),
    (re.compile(r"Creative Commons Attribution[- ]ShareAlike (\d\.\d)", re.I), "CC BY-SA {}"),
    (re.compile(r"Creative Commons Attribution[- ]NonCommercial (\d\.\d)", re.I), "CC BY-NC {}"),
    (re.compile(r"Creative Commons Attribution (\d\.\d)", re.I), "CC BY {}"),
    (re.compile(r"\bApache[- ](?:License,? )?(?:Version )?2\.0\b", re.I), "Apache-2.0"),
    (re.compile(r"\bMIT License\b", re.I), "MIT"),
    (re.compile(r"\bCC0\b"), "CC0-1.0"),
]


@dataclasses.dataclass
class DatasetInfo:
    """One dataset: where its rows are, its card text and what the LLM is shown."""

    name: str
    path: Path
    description: str = ""
    license: str = ""
    source: str = ""
    tags: list[str] = dataclasses.field(default_factory=list)
    fields: list[str] = dataclasses.field(default_factory=list)
    hidden: list[str] = dataclasses.field(default_factory=list)
    samples: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def is_id_field(name: str) -> bool:
    """Fields that name an identifier (``id``, ``question_id``, ``uid``, ``docId``) are hidden."""
    return bool(_ID_TOKEN.search(name)) or name.lower() in ("id", "idx", "index")


def find_datasets(path: str | os.PathLike[str]) -> list[Path]:
    """The datasets under ``path``: itself when it is a data file or a ``datasets`` folder,
    else every data file and dataset folder below it, in sorted order."""
    root = Path(path)
    if not root.exists():
        raise DataError(root, None, "no such file or folder")
    if (root / "dataset_dict.json").exists():  # a DatasetDict: each split is a dataset
        return sorted(p for p in root.iterdir() if _is_hf_folder(p))
    if root.is_file() or _is_hf_folder(root):
        return [root]
    found: list[Path] = []
    for child in sorted(root.iterdir()):
        if child.is_file() and child.suffix.lower() in DATA_SUFFIXES:
            found.append(child)
        elif child.is_dir() and not child.name.startswith("."):
            found.extend(find_datasets(child))
    return found


def _is_hf_folder(path: Path) -> bool:
    return path.is_dir() and any((path / n).exists() for n in ("dataset_info.json", "state.json"))


def dataset_name(path: Path) -> str:
    """A file's stem, or a ``datasets`` folder's name (``<parent>-<split>`` for a split)."""
    if path.is_dir() and (path.parent / "dataset_dict.json").exists():
        return f"{path.parent.name}-{path.name}"
    return path.stem if path.is_file() else path.name


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of a dataset as a dict (CSV read here; the rest by :func:`tunesmith.io.iter_rows`)."""
    if path.is_file() and path.suffix.lower() == ".csv":
        return list(_iter_csv(path))
    from tunesmith.io import iter_rows

    rows = [dict(row) for _, row in iter_rows(path)]
    if not rows:
        raise DataError(path, None, "no rows to read")
    return rows


def _iter_csv(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                if None in row:  # more cells than header names
                    raise DataError(path, reader.line_num, "more cells than columns")
                yield dict(row)
    except UnicodeDecodeError as exc:
        raise DataError(path, None, f"not UTF-8 ({exc.reason})") from None


def load_info(
    path: Path, rows: Sequence[Mapping[str, Any]], *, card: Path | None = None,
    license: str | None = None, sample_rows: int = 2, sample_chars: int = 300,
) -> DatasetInfo:  # fmt: skip
    """The metadata of one dataset (card: ``card``, ``dataset_info.json`` or a card file beside
    it; ``license`` overrides what the card says)."""
    info = DatasetInfo(name=dataset_name(path), path=path)
    hf = _hf_info(path)
    text = card.read_text(encoding="utf-8") if card else _card_text(path)
    front, body = _front_matter(text)
    info.description = (hf.get("description") or "").strip() or _summary(body)
    info.license = license or hf.get("license") or front.get("license") or _license_in(text)
    info.source = hf.get("homepage") or front.get("homepage") or str(path)
    tags = front.get("task_categories") or front.get("tags") or []
    info.tags = [str(t) for t in tags] if isinstance(tags, list) else [str(tags)]
    names = _field_names(rows)
    info.hidden = [f for f in names if is_id_field(f)]
    info.fields = [f for f in names if f not in info.hidden]
    info.samples = pick_samples(rows, info.fields, sample_rows, sample_chars)
    return info


def _hf_info(path: Path) -> dict[str, Any]:
    p = path / "dataset_info.json" if path.is_dir() else path.with_name("dataset_info.json")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _card_text(path: Path) -> str:
    folder = path if path.is_dir() else path.parent
    for pattern in CARD_PATTERNS:
        for candidate in sorted(folder.glob(pattern)):
            if candidate.is_file():
                return candidate.read_text(encoding="utf-8", errors="replace")
    return ""


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    """A card's YAML front matter (``yaml.safe_load``) and the rest of the text."""
    if not text.startswith("---"):
        return {}, text
    end = text.find("\n---", 3)
    if end < 0:
        return {}, text
    import yaml

    try:
        front = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        front = None
    return (front if isinstance(front, dict) else {}), text[end + 4 :]


def _summary(body: str, limit: int = 1200) -> str:
    """The card's prose without headings, links' URLs, emphasis marks and tables, cut at
    ``limit`` characters."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", body)
    text = re.sub(r"(\*{1,3}|`)(\S.*?)\1", r"\2", text)  # **bold**, `code`
    lines = [ln.strip() for ln in text.splitlines()]
    keep = [ln for ln in lines if ln and not ln.startswith(("#", "|", "```", "!["))]
    out = " ".join(keep)
    return out if len(out) <= limit else out[: out.rfind(" ", 0, limit)] + " ..."


def _license_in(text: str) -> str:
    for pattern, template in _LICENSES:
        m = pattern.search(text)
        if m:
            if template is None:
                return re.sub(r"[- ]+", " ", m.group(0).upper()).replace("BY ", "BY-", 1)
            return template.format(*m.groups())
    return ""


def _field_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for row in rows[:100]:
        names.update(dict.fromkeys(row))
    return list(names)


def _shown(value: Any, limit: int) -> bool:
    """Sample values the paper shows: not nested (lists of short strings pass), not long."""
    if isinstance(value, dict):
        return False
    if isinstance(value, list):
        return all(isinstance(v, str | int | float) for v in value) and len(str(value)) <= limit
    return value is not None and len(str(value)) <= limit


def pick_samples(
    rows: Sequence[Mapping[str, Any]], fields: Sequence[str], count: int, limit: int
) -> list[dict[str, Any]]:
    """``count`` sample rows from the first 100, those with the most fields shown first;
    long or nested values are left out (Dynosaur shows two rows this way)."""
    scored = []
    for i, row in enumerate(rows[:100]):
        shown = {f: row[f] for f in fields if f in row and _shown(row[f], limit)}
        scored.append((-len(shown), i, shown))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [shown for _, _, shown in scored[:count]]


def label_space(
    rows: Sequence[Mapping[str, Any]], field: str, *, max_labels: int = 10,
    max_chars: int = 15, max_share: float = 0.8,
) -> list[str] | None:  # fmt: skip
    """The allowed labels when ``field`` looks categorical in the first 100 rows: at most
    ``max_labels`` distinct values of at most ``max_chars`` characters, and no value holding
    more than ``max_share`` of the rows (Dynosaur's label hint); else None. Values must repeat
    (twice per label on average): a field of all-distinct values is not a label space."""
    values = [str(r.get(field, "")).strip() for r in rows[:100] if r.get(field) not in (None, "")]
    counts = Counter(values)
    if len(counts) < 2 or len(counts) > max_labels or len(values) < 2 * len(counts):
        return None
    if any(len(v) > max_chars for v in counts) or max(counts.values()) > max_share * len(values):
        return None
    return sorted(counts)


# -- row values as instruction text (Dynosaur's input rendering) ------------------------------
def is_nested(value: Any) -> bool:
    """A mapping, or a list holding mappings or lists: not a text or a list of options."""
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and any(isinstance(v, dict | list) for v in value)


def render_value(value: Any) -> str:
    """A field's value as text; a list of options becomes lettered options (A. ..., B. ...)."""
    if isinstance(value, list):
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        if all(isinstance(v, str | int | float) for v in value) and len(value) <= len(letters):
            return "\n".join(f"{letters[i]}. {v}" for i, v in enumerate(value))
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value).strip()


def render_input(row: Mapping[str, Any], fields: Sequence[str]) -> str:
    """One field -> its value; several -> one ``field is 'value'.`` line each (the paper's)."""
    if len(fields) == 1:
        return render_value(row.get(fields[0]))
    return "\n".join(f"{f} is '{render_value(row.get(f))}'." for f in fields)
