"""The records concept memory stores and returns (shared by memory, tools, graphs, cat and evals)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Identity(BaseModel):
    """SLC's identity of a concept, extracted once at registration: what never changes vs. what may."""

    category: str = Field(description="Permanent category, e.g. 'dog', 'mug', 'person'.")
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Changeable or identifying attributes, e.g. {'fur': 'golden'}."
    )


class ReferenceImage(BaseModel):
    """A reference image of a concept: a content-addressed file under the data dir plus its embedding id."""

    sha256: str
    path: str = Field(description="Path of the stored copy (inside the memory's image store).")
    width: int
    height: int


class Concept(BaseModel):
    """One personal concept of one tenant ("my dog <bo>")."""

    id: str = Field(description="Stable id (tenant-scoped); survives renames.")
    tenant: str
    name: str = Field(description="Canonical name without angle brackets, e.g. 'bo'.")
    description: str = ""
    identity: Identity | None = None
    tree: dict[str, Any] | None = Field(default=None, description="Concept-as-Tree JSON (slc.cat.ConceptTree).")
    images: list[ReferenceImage] = Field(default_factory=list)
    adapter: str | None = Field(default=None, description="Meta adapter this concept is routed to, if known.")
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)

    @property
    def token(self) -> str:
        """How the concept is written in prompts: ``<bo>``."""
        return f"<{self.name}>"

    @property
    def category(self) -> str | None:
        return self.identity.category if self.identity else None


class RecallHit(BaseModel):
    """A concept recalled for a query, and why."""

    concept: Concept
    score: float = Field(description="Best cosine similarity to the query image (1.0 for a name match alone).")
    matched_by: list[Literal["name", "image", "text"]] = Field(default_factory=list)
