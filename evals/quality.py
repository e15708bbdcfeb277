"""Item quality checks that loaders report: repeats (and how exact they are) and degenerate options.

Why precise: "25 exact repeats removed" is wrong when 6 of them differ from the row kept by a trailing ".",
and a question offering ``{A: "No", B: "No"}`` cannot be answered by its text at all. Users deciding whether
to trust a score need the counts by kind and the ids, so both are kept in the load report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, Field

IDENTICAL = "identical"
NEAR = "differ only in punctuation or spacing"
_NOT_WORD = re.compile(r"[\W_]+")


def canonical(text: str) -> str:
    """Lower-case words only: what two texts share when they differ only in punctuation, case or spacing."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def degenerate_reason(options: Mapping[str, str]) -> str | None:
    """Why no reply can pick the right option by its text (two options with the same text), or None."""
    seen: dict[str, str] = {}
    for letter, text in options.items():
        key = canonical(text)
        if key in seen:
            return f"options {seen[key]} and {letter} are the same text ({text.strip()!r})"
        seen[key] = letter
    return None


class RepeatLog(BaseModel):
    """Rows dropped as repeats of an earlier row, by how closely they repeat it, with examples."""

    counts: dict[str, int] = Field(default_factory=dict)
    examples: dict[str, str] = Field(default_factory=dict, description="kind -> one 'dropped (kept)' pair of ids.")

    def add(self, dropped_id: str, kept_id: str, dropped_raw: str, earlier_raws: set[str],
            kind: str | None = None) -> None:
        """Record a drop: ``dropped_raw`` is the row as the file writes it, ``earlier_raws`` the rows before it
        that it repeats (identical when it is byte for byte one of them), unless the loader knows a more
        specific ``kind`` (a file's own quirk)."""
        kind = kind or (IDENTICAL if dropped_raw in earlier_raws else NEAR)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.examples.setdefault(kind, f"{dropped_id}, kept {kept_id}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def note(self, what: str = "repeats") -> str | None:
        if not self.total:
            return None
        kinds = sorted(self.counts.items(), key=lambda kv: kv[0] != IDENTICAL)
        return f"{self.total} {what} removed: " + "; ".join(
            f"{n} {kind} (e.g. {self.examples[kind]})" for kind, n in kinds)


__all__ = ["IDENTICAL", "NEAR", "RepeatLog", "canonical", "degenerate_reason"]
