"""The state of the SLC answer graph, and the narrower input a caller sends.

Why small: LangGraph checkpoints the whole state after every node; a 200-turn thread with a growing
message list wrote 62 MB. So images are content hashes (files in the ImageStore), the per-turn fields
(candidates, detections, verdicts) are replaced at each turn, and the message history is trimmed to
``Context.max_history_messages`` by the reason node. Everything a trace needs to explain an answer
(every claim of every round, every verdict) still stays in state for the turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from langchain_core.messages import AnyMessage
from langgraph.graph import add_messages
from pydantic import BaseModel, Field

from slc.agent.detection import Detection
from slc.memory.types import RecallHit


class Candidate(RecallHit):
    """A concept recalled for this turn: memory's hit as it came (the concept, why and how well it matched)."""

    @property
    def name(self) -> str:
        return self.concept.name

    @property
    def category(self) -> str | None:
        return self.concept.category

    @property
    def attributes(self) -> dict[str, str]:
        """The concept's identity attributes ({} when it has no identity)."""
        return dict(self.concept.identity.attributes) if self.concept.identity else {}

    @property
    def asked(self) -> bool:
        """The question names this concept (so an 'absent' claim about it is re-checked)."""
        return "name" in self.matched_by


class Verdict(BaseModel):
    """The large VLM's verdict on one claim of one round."""

    concept: str
    round: int
    claim: Literal["present", "absent", "unknown"]
    verdict: Literal["agree", "disagree", "uncertain", "unverified"]
    visible: bool | None = None
    location_ok: bool | None = None
    identity_ok: bool | None = None
    feedback: str = ""
    prompt_version: str = ""
    cleared: list[Literal["location-absolute", "location-relative"]] = Field(
        default_factory=list, description="Locations of the claim the verifier refuted while agreeing the concept "
        "is there (the SLC paper's per-concept reflection: one 'no' clears that location).")

    @property
    def disputed(self) -> bool:
        return self.verdict in ("disagree", "uncertain")


class FinalDetection(BaseModel):
    """What the answer relies on for one concept: the last claim, corrected by the last verdict."""

    concept: str
    present: Literal["true", "false", "unknown"]
    verified: bool
    location_absolute: str | None = None
    location_relative: str | None = None
    category: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    note: str = ""


class Answer(BaseModel):
    """The structured answer of a turn."""

    text: str
    concepts_used: list[str] = Field(default_factory=list)
    degraded: bool = False
    structured: bool = Field(default=True, description="False when the model's reply was not the JSON asked for.")
    prompt_version: str = ""


@dataclass(kw_only=True)
class InputState:
    """What a caller sends per turn: a question and optionally a photo, or chat messages.

    ``image``: the sha256 of a stored photo, a ``data:image/...;base64,`` URL or bare base64, or a path
    (under the allowed folders). Or, as a chat front-end sends it (LangGraph Studio's chat, Agent Chat UI):
    ``messages`` ending with a human message whose content holds the question's text plus one image block.
    The graph stores the photo before its first node and keeps only its sha256, the only form of a photo
    state ever holds (:mod:`slc.graphs.message_photos`).
    """

    question: str = ""
    image: str | None = None
    messages: Annotated[list[AnyMessage], add_messages] = field(default_factory=list)


@dataclass(kw_only=True)
class State(InputState):
    """Full graph state (per thread, checkpointed)."""

    candidates: list[Candidate] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    final: list[FinalDetection] = field(default_factory=list)
    round: int = 0
    pending: list[str] = field(default_factory=list)
    answer: Answer | None = None
    degraded: bool = False
    flags: list[str] = field(default_factory=list)
    large_vlm_calls: int = 0


__all__ = ["Answer", "Candidate", "FinalDetection", "InputState", "State", "Verdict"]
