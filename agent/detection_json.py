"""SLC's per-concept JSON reply to the DETECT prompt: its schema, and reading it out of generated text.

Why tolerant: a small VLM's JSON is often almost right (repaired by :mod:`slc.agent.json_reply`), and SLC's
hyphenated keys compete with underscore spellings; what cannot be read is reported with the reason, so the
detector retries with a stricter prompt and never turns a failure into "absent".
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from slc.agent.json_reply import parse_json_object


class StructuredAnswer(BaseModel):
    """SLC's per-concept JSON, validated. Accepts SLC's hyphenated keys and underscore spellings."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    present: bool
    location_absolute: str | None = Field(default=None, alias="location-absolute")
    location_relative: str | None = Field(default=None, alias="location-relative")
    concept_info: str | None = Field(default=None, alias="concept-info")

    @field_validator("present", mode="before")
    @classmethod
    def _bool(cls, v: JsonValue) -> JsonValue:
        if isinstance(v, str):
            low = v.strip().lower()
            if low in ("true", "yes", "present"):
                return True
            if low in ("false", "no", "absent"):
                return False
            raise ValueError(f"'present' must be true or false, got {v!r}")
        if not isinstance(v, bool):
            raise ValueError(f"'present' must be true or false, got {v!r}")
        return v

    @field_validator("location_absolute", "location_relative", "concept_info", mode="before")
    @classmethod
    def _text(cls, v: JsonValue) -> str | None:
        if v is None:
            return None
        if isinstance(v, (list, tuple)):
            v = ", ".join(str(x) for x in v)
        elif not isinstance(v, str):
            v = str(v)
        v = v.strip()
        return v or None


def validate_answer(obj: dict[str, JsonValue], name: str) -> StructuredAnswer:
    """Validate one concept's JSON; unwraps SLC's ``{"<name>": {...}}`` (also ``{"<<name>>": ...}``).

    Raises ``ValueError`` naming what is wrong.
    """
    inner: JsonValue = obj
    for key in (name, f"<{name}>"):
        if isinstance(obj.get(key), dict):
            inner = obj[key]
            break
    else:
        if "present" not in obj and len(obj) == 1 and isinstance(next(iter(obj.values())), dict):
            inner = next(iter(obj.values()))  # keyed by some other spelling of the concept
    try:
        return StructuredAnswer.model_validate(inner)
    except ValidationError as exc:
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc'])) or 'object'}: {e['msg']}" for e in exc.errors())) from exc


@dataclass(frozen=True)
class ParseResult:
    """What one generated reply gave: a valid answer, or why not."""

    answer: StructuredAnswer | None
    error: str | None
    repairs: tuple[str, ...] = ()


def parse_detection_output(text: str, name: str) -> ParseResult:
    """Find, repair and validate the JSON for concept ``name`` in a generated reply."""
    parsed = parse_json_object(text)
    if parsed is None:
        return ParseResult(None, "no JSON object in the reply")
    try:
        return ParseResult(validate_answer(parsed.value, name), None, tuple(parsed.repairs))
    except ValueError as exc:
        return ParseResult(None, f"JSON does not match the schema: {exc}", tuple(parsed.repairs))


__all__ = ["ParseResult", "StructuredAnswer", "parse_detection_output", "validate_answer"]
