"""Reading annotation text the way every loader needs it: JSON files, ``<image>`` tags, concept tags, options
written inline in a question ("Q? A. x; B. y").

Why one module: the same question text arrives from Yo'LLaVA, RAP, MC-LLaVA and SLC's copies; a concept
tag must mean the same thing in all of them (``<image>`` is LLaVA's image placeholder, never a concept).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from slc.evals.items import IMAGE_TAG, BenchmarkFormatError

_OPTION_MARK = re.compile(r"(?:^|(?<=[\s;?.!,]))([A-H])\s*[.:)]")
_CONCEPT_TAG = re.compile(r"<([^<>\s]+)>")
_LETTER_ANSWER = re.compile(r"^\(?([A-H])(?:[.):]|$)")


def read_json(path: Path) -> object:
    """The file's JSON; a clear BenchmarkFormatError naming the file when it is not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BenchmarkFormatError(f"{path} is not valid JSON: {exc}") from exc


def expect(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise BenchmarkFormatError(f"{path}: {what}")


def strip_image_tag(text: str) -> str:
    return text.replace(IMAGE_TAG + "\n", "").replace(IMAGE_TAG, "").strip()


def concept_tags(text: str) -> list[str]:
    """Concepts a text names as ``<name>``, in order, once each; LLaVA's ``<image>`` placeholder is not one."""
    return dedup(n for n in _CONCEPT_TAG.findall(text) if n != IMAGE_TAG[1:-1])


def name_concept(question: str, concept: str) -> str:
    """Yo'LLaVA writes the concept as ``<sks>``, RAP's copy as bare ``sks``: write it as ``<concept>``."""
    q = question.replace("<sks>", f"<{concept}>")
    return re.sub(r"(?<![\w<])sks(?![\w>])", f"<{concept}>", q)


def split_options(text: str) -> tuple[str, dict[str, str]] | None:
    """Split ``"Q? A. x; B. y"`` (and the variants ``A: x``, ``A.x.``, ``?A.``) into stem and options."""
    marks = []
    want = "A"
    for m in _OPTION_MARK.finditer(text):
        if m.group(1) == want:
            marks.append(m)
            want = chr(ord(want) + 1)
    if len(marks) < 2:
        return None
    options = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        options[m.group(1)] = text[m.end() : end].strip().rstrip(";.,").strip()
    if any(not v for v in options.values()):
        return None
    return text[: marks[0].start()].strip(), options


def answer_letter(answer: str) -> str | None:
    """The option letter an annotation's answer field gives ("B", "B.", "(B) School uniform"), or None."""
    m = _LETTER_ANSWER.match(str(answer).strip())
    return m.group(1) if m else None


def dedup(xs: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(xs))


__all__ = ["answer_letter", "concept_tags", "dedup", "expect", "name_concept", "read_json", "split_options",
           "strip_image_tag"]
