"""Find and repair the JSON object in a small model's reply.

Why: small VLMs write almost-JSON: prose or a code fence around it, Python-style single quotes and
True/False/None, trailing commas, or an object cut off by the token limit (missing closing quotes and
braces). Each of these has one obvious reading, so we repair it rather than discard the answer; anything
that still does not parse is reported as a failure (the caller retries with a stricter prompt and finally
says "unknown"), never guessed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)
_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}


class ParsedJSON(BaseModel):
    """A JSON object found in a reply, and whether it needed repair to parse."""

    value: dict[str, Any]
    repaired: bool
    repairs: list[str] = []


def _first_object(text: str) -> dict[str, Any] | None:
    """The first JSON object that parses from some '{' onwards (trailing text ignored)."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text[m.start():])
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _swap_quotes(text: str) -> str:
    """Single-quoted strings -> double-quoted (escaping inner double quotes), outside double-quoted strings."""
    out: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is None:
            if ch in "\"'":
                quote = ch
                out.append('"')
            else:
                out.append(ch)
        else:
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i : i + 2])
                i += 2
                continue
            if ch == quote:
                quote = None
                out.append('"')
            elif ch == '"' and quote == "'":
                out.append('\\"')
            else:
                out.append(ch)
        i += 1
    return "".join(out)


def _python_literals(text: str) -> str:
    """True/False/None outside strings -> true/false/null."""
    parts = re.split(r'("(?:[^"\\]|\\.)*")', text)
    for k in range(0, len(parts), 2):  # even indices are outside strings
        parts[k] = re.sub(r"\b(True|False|None)\b", lambda m: _PY_LITERALS[m.group(1)], parts[k])
    return "".join(parts)


def _close(text: str) -> str:
    """Close an unterminated string and every open bracket, innermost first (a reply cut off mid-way)."""
    stack: list[str] = []
    in_str = False
    escaped = False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack and stack[-1] == ch:
            stack.pop()
    tail = '"' if in_str else ""
    body = (text + tail).rstrip()
    body = re.sub(r"[,:]\s*$", "", body)  # a dangling separator cannot be completed meaningfully
    if body.endswith('"') and stack and stack[-1] == "}" and _dangling_key(body):
        body += ": null"
    return body + "".join(reversed(stack))


def _dangling_key(body: str) -> bool:
    """True when the object ends with a key that has no value yet: ``{"a": 1, "b"``."""
    m = re.search(r'[{,]\s*"(?:[^"\\]|\\.)*"$', body)
    return m is not None


def parse_json_object(text: str) -> ParsedJSON | None:
    """The JSON object in ``text``, repaired if needed; None when no object can be read.

    Repairs, tried in order and recorded in ``repairs``: strip code fences, drop text around the object,
    single -> double quotes, Python literals, trailing commas, close an unterminated string and missing
    closing brackets.
    """
    if not text or "{" not in text:
        return None
    candidates: list[str] = []
    fenced = _FENCE_RE.search(text)
    if fenced and "{" in fenced.group(1):
        candidates.append(fenced.group(1))
    candidates.append(text)
    for k, cand in enumerate(candidates):
        fence = ["code fence"] if fenced and k == 0 and len(candidates) == 2 else []
        obj = _first_object(cand)
        if obj is not None:
            stripped = cand.strip()
            exact = stripped.startswith("{") and stripped.endswith("}") and not fence
            return ParsedJSON(value=obj, repaired=not exact, repairs=fence + ([] if exact else ["surrounding text"]))
        body = cand[cand.index("{") :]
        repairs = list(fence)
        steps = (
            ("single quotes", _swap_quotes),
            ("python literals", _python_literals),
            ("trailing commas", lambda s: _TRAILING_COMMA_RE.sub(r"\1", s)),
            ("unclosed brackets", _close),
        )
        for label, fix in steps:
            fixed = fix(body)
            if fixed != body:
                repairs.append(label)
                body = fixed
            obj = _first_object(body)
            if obj is not None:
                return ParsedJSON(value=obj, repaired=True, repairs=repairs)
    return None
