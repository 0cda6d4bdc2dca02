r"""Parsers for the raw text that generation prompts get back (Self-Instruct and Alpaca).

Each parser follows the published post-processing of its method (Wang et al. 2023, the
``yizhongw/self-instruct`` scripts; Taori et al. 2023, ``stanford_alpaca``) and is tested on messy
real model output: truncated lists, prose around the list, wrong numbering, missing markers.
Parsers are pure functions of (text, finish_reason); they never drop silently: every candidate
that is cut is returned with the reason so the run can record it.

Self-Instruct bootstrapping defaults are the reference code's (``bootstrap_instructions.py``):

* a response that stopped at ``max_tokens`` (finish reason ``length``) is dropped whole
  (``truncation="drop_response"``); ``"drop_last"`` keeps the complete items before the cut (the
  paper's intent), as an opt-in;
* the list is split exactly where the reference splits it, on ``\n<digits> . `` / ``\n<digits>. ``
  (``split="reference"``); ``"lenient"`` also splits on ``9)`` and indented numbers, which helps a
  small model that numbers loosely but also cuts an instruction that holds its own ``1)`` list;
* each item is capitalised before the filters run, so ``write a program ...`` meets the
  ``Write a program`` rule. Remaining difference: by default only the first letter is raised
  (``capitalize="first"``); the reference's ``str.capitalize`` also lower-cases the rest
  ("SQL" -> "sql"), available as ``capitalize="python"``; ``"none"`` keeps the text as generated.
"""

from __future__ import annotations

import dataclasses
import re

#: Self-Instruct's own split of a continued numbered list (``re.split`` in its bootstrap script).
_REFERENCE_SPLIT = re.compile(r"\n\d+\s?\. ")
#: A looser split: also ``9)``, indented numbers and any whitespace after the marker.
_LENIENT_SPLIT = re.compile(r"\n\s*\d+\s?[.)]\s")
_SPLITS = {"reference": _REFERENCE_SPLIT, "lenient": _LENIENT_SPLIT}
_WS = re.compile(r"\s+")
CAPITALIZE_MODES = ("first", "python", "none")
TRUNCATION_MODES = ("drop_response", "drop_last")


@dataclasses.dataclass(frozen=True)
class ParsedItem:
    """One candidate cut out of a response; ``reason`` is set when the parser itself rejects it."""

    instruction: str
    input: str = ""
    output: str = ""
    reason: str = ""


def capitalize_text(text: str, mode: str | bool = "first") -> str:
    """Capitalise an instruction as Self-Instruct does before its filters.

    Args:
        text: the instruction.
        mode: ``"first"`` raises the first character only; ``"python"`` is the reference code's
            ``str.capitalize`` (which also lower-cases the rest); ``"none"`` leaves it. ``True``
            and ``False`` mean ``"python"`` and ``"none"`` (the older boolean option).
    """
    if isinstance(mode, bool):
        mode = "python" if mode else "none"
    if mode not in CAPITALIZE_MODES:
        raise ValueError(f"capitalize must be one of {', '.join(CAPITALIZE_MODES)}, not {mode!r}")
    if mode == "python":
        return text.capitalize()
    return text[:1].upper() + text[1:] if mode == "first" else text


def clean_instruction(text: str, *, capitalize: str | bool = "none") -> str:
    """Collapse whitespace, strip, drop trailing colons (as the bootstrapping prompt does).

    Args:
        capitalize: see :func:`capitalize_text` (``"none"`` here: prompts show seeds verbatim).
    """
    text = _WS.sub(" ", text).strip().rstrip(":").strip()
    return capitalize_text(text, capitalize)


def parse_numbered_instructions(
    text: str,
    finish_reason: str = "stop",
    *,
    truncation: str = "drop_response",
    capitalize: str | bool = "first",
    split: str = "reference",
) -> list[ParsedItem]:
    r"""Split a continued numbered list (the prompt ended with ``"9."``) into instructions.

    Args:
        text: the completion, starting right after the open number.
        finish_reason: ``"length"`` means the response was cut at ``max_tokens``.
        truncation: ``"drop_response"`` (the reference code, default: every item of a cut
            response is dropped) or ``"drop_last"`` (the paper's intent: only the cut item).
        capitalize: ``"first"`` (default), ``"python"`` or ``"none"``; see :func:`capitalize_text`.
        split: ``"reference"`` (the code's ``\n<digits> . `` pattern) or ``"lenient"``.

    Returns:
        Every non-empty item, in order; dropped ones carry a ``reason``.
    """
    if truncation not in TRUNCATION_MODES:
        raise ValueError(f"truncation must be drop_response or drop_last, not {truncation!r}")
    if split not in _SPLITS:
        raise ValueError(f"split must be reference or lenient, not {split!r}")
    if split == "lenient":  # also split a first item written as "10. ..."
        text = "\n" + text.lstrip(" \t")
    pieces = _SPLITS[split].split(text)
    items = [clean_instruction(p, capitalize=capitalize) for p in pieces]
    out = [ParsedItem(i) for i in items if i]
    if finish_reason == "length" and out:
        if truncation == "drop_response":
            return [dataclasses.replace(o, reason="truncated response") for o in out]
        out[-1] = dataclasses.replace(out[-1], reason="truncated")
    return out


# -- Alpaca: "###"-separated blocks of numbered Instruction / Input / Output ---------------------
_ALPACA_FIELDS = re.compile(r"\d+\s*\.\s+(Instruction|Input|Output)\s*:")
NOINPUT = "<noinput>"


def parse_alpaca_tasks(
    text: str, first_index: int, finish_reason: str = "stop", *, strict: bool = False
) -> list[ParsedItem]:
    """Parse an Alpaca-style completion into (instruction, input, output) tasks.

    The prompt ended with ``"###\\n<first_index>. Instruction:"``, so that label is put back in
    front of the text. Blocks are split on ``###``; each must hold exactly the three fields, in
    order; ``<noinput>`` becomes ``""``. Unlike the reference code, the item number is not
    required to match its position, and (unless ``strict``) a block that runs on with extra
    Input/Output pairs after a complete triple keeps its first triple (small models often write
    several instances per task); ``strict=True`` discards such blocks, as the reference does.

    Args:
        text: the completion.
        first_index: the number of the first open task (4 when the prompt showed 3 seeds).
        finish_reason: ``"length"`` drops the last block (likely cut mid-way).
        strict: discard blocks with more than the three fields (the reference behaviour).
    """
    blocks = re.split(r"###", f"{first_index}. Instruction:" + text)
    out: list[ParsedItem] = []
    for idx, block in enumerate(blocks):
        if not block.strip():
            continue
        parts = _ALPACA_FIELDS.split(block)
        # parts = [prefix, "Instruction", text, "Input", text, "Output", text]
        labels = parts[1::2]
        complete = labels[:3] == ["Instruction", "Input", "Output"]
        if not complete or (strict and len(labels) != 3):
            guess = clean_instruction(parts[2]) if len(parts) > 2 else clean_instruction(block)
            out.append(ParsedItem(guess, reason="malformed block"))
            continue
        instruction = parts[2].strip()
        inp = parts[4].strip()
        inp = "" if inp.lower() == NOINPUT else inp
        item = ParsedItem(instruction, inp, parts[6].strip())
        if idx == len(blocks) - 1 and finish_reason == "length":
            item = dataclasses.replace(item, reason="truncated")
        out.append(item)
    return out


# -- Self-Instruct instances ------------------------------------------------------------------
_EXAMPLE_SPLIT = re.compile(r"Example\s?\d*\.?")
_OUTPUT_SPLIT = re.compile(r"Output\s*\d*\s*:")
_INPUT_SPLIT = re.compile(r"Input\s*\d*\s*:")
_INPUT_PREFIX = re.compile(r"^Input\s*\d*\s*:")


def split_input_output(text: str) -> tuple[str, str]:
    """One example's text to (input, output), as the Self-Instruct scripts do.

    Without an ``Output:`` marker the whole text is the output (a task with no input). A second
    ``Input:`` inside the output (the model ran on into another pair) is cut off.
    """
    if _OUTPUT_SPLIT.search(text):
        inp, out = _OUTPUT_SPLIT.split(text, maxsplit=2)[:2]
    else:
        inp, out = "", text
    out = _INPUT_SPLIT.split(out)[0]
    inp = _INPUT_PREFIX.sub("", inp.strip())
    return inp.strip(), out.strip()


def parse_input_first(text: str, finish_reason: str = "stop") -> list[tuple[str, str]]:
    """Instances of a non-classification task (``Example k`` blocks, input fields then output)."""
    text = text.strip()
    if _EXAMPLE_SPLIT.search(text):
        chunks = [c.strip() for c in _EXAMPLE_SPLIT.split(text) if c.strip()]
        pairs = [split_input_output(c) for c in chunks]
    elif _OUTPUT_SPLIT.search(text):
        pairs = [split_input_output(text)]  # one pair without an Example header
    else:
        return []
    if finish_reason == "length":
        pairs = pairs[:-1]
    return pairs


def parse_output_first(text: str, finish_reason: str = "stop") -> list[tuple[str, str]]:
    """Instances of a classification task: ``Class label: L`` then the input for that label."""
    if "Class label:" not in text:
        return []
    pairs = []
    for chunk in text.split("Class label:")[1:]:
        label, _, rest = chunk.strip().partition("\n")
        pairs.append((rest.strip(), label.strip()))
    if finish_reason == "length":
        pairs = pairs[:-1]
    return pairs


def is_valid_instance(inp: str, out: str) -> bool:
    """The Self-Instruct validity rules: output non-empty, differs from the input, and neither
    ends with ``:`` (a sign of an unfinished generation)."""
    return (
        bool(out) and inp != out and not inp.strip().endswith(":") and not out.strip().endswith(":")
    )


def clean_instances(
    pairs: list[tuple[str, str]], max_instances: int = 5
) -> tuple[list[tuple[str, str]], str]:
    """Filter one task's instances: invalid ones out, conflicts drop all, dedup, cap.

    Returns:
        The kept (input, output) pairs and, when none survive, the reason.
    """
    if not pairs:
        return [], "no parseable instance"
    valid = [p for p in pairs if is_valid_instance(*p)]
    if not valid:
        return [], "no valid instance"
    seen_out: dict[str, str] = {}
    for inp, out in valid:
        if inp and seen_out.setdefault(inp, out) != out:
            return [], "same input with different outputs"
    unique = list(dict.fromkeys(valid))
    return unique[:max_instances], ""


def parse_yes_no(text: str) -> bool:
    """Classification identification answer: Yes iff the stripped answer is yes/Yes/YES.

    A trailing period or comma after the word ("Yes.") is tolerated; "Yesterday" is not.
    """
    words = text.strip().split()
    return bool(words) and words[0].rstrip(".,!") in ("yes", "Yes", "YES")
