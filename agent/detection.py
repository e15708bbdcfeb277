"""Schemas of the small VLM's personalization output (shared by the runtime, the tool and the graph).

Why a status and not a bool: SLC turns unparseable output into "every concept absent", which hides
failures as confident negatives. Here a failure is ``status="unknown"`` with the raw text kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class ConceptQuery(BaseModel):
    """What the small VLM is told about one candidate concept."""

    name: str = Field(description="Concept name without brackets, e.g. 'bo'.")
    description: str = ""
    category: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    reference_images: list[Path] = Field(
        default_factory=list, description="Shown in context on a second pass (after reflection disputes)."
    )
    adapter: str | None = Field(default=None, description="Routed meta adapter; None = base model.")
    feedback: str | None = Field(default=None, description="The verifier's note from the previous round.")

    @property
    def token(self) -> str:
        return f"<{self.name}>"


class Detection(BaseModel):
    """The small VLM's validated claim about one concept in one image."""

    concept: str
    status: Literal["present", "absent", "unknown"]
    confidence: float = Field(ge=0.0, le=1.0, description="P(present) from the Yes/No token probabilities.")
    location_absolute: str | None = Field(default=None, description="e.g. 'bottom left'.")
    location_relative: str | None = Field(default=None, description="e.g. 'next to the red sofa'.")
    evidence: str | None = Field(default=None, description="What the model saw (concept-info in SLC).")
    raw_output: str | None = Field(default=None, description="The model's text, kept for debugging and traces.")
    adapter: str | None = None
    attempts: int = Field(default=1, ge=1, description="Generation attempts (retries with a stricter prompt).")
    round: int = Field(default=0, ge=0, description="Reflection round that produced this detection.")
    prompt_version: str | None = Field(default=None, description="Version of the prompts that produced it.")
    yes_no_mass: float | None = Field(
        default=None, ge=0.0, le=1.0, description="P(Yes)+P(No) among all tokens at the answer position."
    )
    status_source: Literal["yes_no", "json"] | None = Field(
        default=None, description="Where status came from (see slc.agent.small_vlm.derive_status); None = unknown."
    )
    json_present: bool | None = Field(default=None, description="The 'present' field of the model's JSON, if valid.")
    parse_error: str | None = Field(default=None, description="Why the JSON part failed after all attempts.")
    error: str | None = Field(default=None, description="Why the model could not run for it (e.g. an unreadable image).")

    @property
    def present(self) -> bool:
        return self.status == "present"

    @model_validator(mode="after")
    def _consistent(self) -> "Detection":
        if self.status == "absent":
            self.location_absolute = self.location_absolute or None
        return self


class DerivedIdentity(BaseModel):
    """A concept's identity as the small VLM reads it off the concept's own photos at registration.

    Why derived and not given: the identity text must come from the user's photos through the pipeline (the
    SLC paper took it from a human description); each photo is described and every slot takes the value most
    photos agree on (``agreement``: the share that agreed, per slot)."""

    category: str
    attributes: dict[str, str] = Field(default_factory=dict)
    descriptions: list[str] = Field(default_factory=list, description="The model's description of each photo.")
    agreement: dict[str, float] = Field(default_factory=dict)


class DetectionReport(BaseModel):
    """All detections for one image (one personalization pass)."""

    image: str = Field(description="Content hash or path of the query image.")
    question: str | None = Field(default=None, description="The user's question this pass served, if any.")
    detections: list[Detection] = Field(default_factory=list)

    def by_concept(self) -> dict[str, Detection]:
        return {d.concept: d for d in self.detections}
