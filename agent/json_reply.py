"""The JSON object in a model's reply: repaired by the json-repair package, never made up out of prose.

Why a library: small VLMs (and chatty large ones) write almost-JSON: prose or a code fence around it,
single quotes and True/False/None, trailing commas, or an object cut off by the token limit.
``json_repair`` reads all of these. What this module adds is the one rule the library does not have: a reply
with no JSON object in it is "no JSON" (None), never an object made up from its words, so the caller
retries with a stricter prompt and finally says "unknown".
"""

from __future__ import annotations

import json
import re

import json_repair
from pydantic import BaseModel, JsonValue

_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)
_DOUBLE_QUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
_SINGLE_QUOTED_RE = re.compile(r"'(?:[^'\\]|\\.)*'")
_LITERAL_RE = re.compile(r"\b(?:True|False|None)\b")
_TRAILING_COMMA_RE = re.compile(r",\s*[}\]]")


class ParsedJSON(BaseModel):
    """A JSON object found in a reply, and what had to be repaired to read it (empty: nothing)."""

    value: dict[str, JsonValue]
    repairs: list[str] = []


def parse_json_object(text: str) -> ParsedJSON | None:
    """The first JSON object in ``text``, repaired by ``json_repair`` when it is broken; None when there is none.

    Reading starts at the first ``{`` (of the code fence's content when there is one), so prose before the
    object is never read as JSON; a reading that is not an object (prose between braces comes back from the
    library as a list of strings) is "no JSON". ``repairs`` names what the reply needed: code fence,
    surrounding text, single quotes, python literals, trailing commas, unclosed brackets.
    """
    fenced = _FENCE_RE.search(text or "")
    in_fence = fenced is not None and "{" in fenced.group(1)
    body = fenced.group(1) if fenced is not None and in_fence else text or ""
    if "{" not in body:
        return None
    body = body[body.index("{") :]
    fence = ["code fence"] if in_fence else []
    try:
        value, end = json.JSONDecoder().raw_decode(body)  # an object that needs no repair
    except ValueError:
        repaired = _first_object(json_repair.repair_json(body, return_objects=True))
        return None if repaired is None else ParsedJSON(value=repaired, repairs=[*fence, *_breakage(body)])
    exact = text.strip() == body[:end]
    return ParsedJSON(value=value, repairs=[*fence, *([] if exact else ["surrounding text"])])


def _first_object(found: JsonValue) -> dict[str, JsonValue] | None:
    """The library's reading as one object (several objects in a row come back as a list: the first)."""
    if isinstance(found, list):
        found = next((item for item in found if isinstance(item, dict)), None)
    return found if isinstance(found, dict) else None


def _breakage(body: str) -> list[str]:
    """What kind of breakage the library repaired in ``body`` (read outside string literals; for the record)."""
    unquoted = _DOUBLE_QUOTED_RE.sub('""', body)
    outside = _SINGLE_QUOTED_RE.sub('""', unquoted)
    found = [label for label, hit in (("single quotes", "'" in unquoted),
                                      ("python literals", _LITERAL_RE.search(outside) is not None),
                                      ("trailing commas", _TRAILING_COMMA_RE.search(outside) is not None)) if hit]
    if outside.count("{") > outside.count("}") or outside.count('"') % 2:
        found.append("unclosed brackets")
    return found


__all__ = ["ParsedJSON", "parse_json_object"]
