"""``detect_personal_concepts``: the small-VLM personalization step as a LangChain tool.

Why a tool: any agent (ours, a host's ``create_agent`` agent, a LangGraph node) can ask "are the user's
concepts <bo>, <mochi> in this photo, and where?" without knowing about memory, adapters or prompts.
The agent gets a short text (``content``); programs get the validated
:class:`~slc.agent.detection.DetectionReport` as the ``artifact`` (``response_format="content_and_artifact"``).

Names are read with the memory's own rule (:func:`slc.memory.names.normalize_name`), then resolve to
:class:`~slc.agent.detection.ConceptQuery` through a resolver: by default :class:`MemoryConceptResolver`
over a :class:`~slc.memory.ConceptMemory` (:func:`slc.memory.queries.concept_query`: description,
identity, reference image paths, routed adapter); any ``Callable[[str], ConceptQuery]`` that raises
:class:`~slc.agent.errors.UnknownConceptError` for unknown names works too. Errors the agent can fix (an
invalid or unknown name, an unreadable image) come back as a ToolException message with suggestions,
never a trace; so does any other failure (:mod:`slc.tools.errors`), so a host agent's run never ends in one. The photo path is an agent's argument, so it is read only under
``settings.privacy.photo_roots`` (:func:`slc.graphs.paths.allowed_path`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Optional

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field

from slc.agent.adapters import AdapterBank
from slc.agent.detection import ConceptQuery, Detection, DetectionReport
from slc.agent.errors import AdapterBankError, InvalidConceptNameError, InvalidImageError, UnknownConceptError
from slc.agent.settings import Settings, get_settings
from slc.graphs.paths import PathNotAllowedError, allowed_path
from slc.memory.names import normalize_name
from slc.memory.queries import concept_query
from slc.tools.errors import tool_errors

if TYPE_CHECKING:
    from slc.agent.small_vlm import SmallVLM
    from slc.memory.store import ConceptMemory

ConceptResolver = Callable[[str], ConceptQuery]

MAX_CONCEPTS = 32


class PersonalizeInput(BaseModel):
    """Arguments of ``detect_personal_concepts``."""

    image: str = Field(description="Path of the photo to check.")
    concepts: list[str] = Field(
        min_length=1,
        max_length=MAX_CONCEPTS,
        description="Names of the user's personal concepts to look for, e.g. ['bo', 'mochi'] (angle brackets optional).",
    )
    question: str | None = Field(default=None, description="The user's question about the photo, if any (kept in the report).")


class MemoryConceptResolver:
    """Resolves a concept name against concept memory, as :func:`~slc.memory.queries.concept_query` says.

    Routing: the adapter stored on the concept when this bank has it; otherwise the bank's nearest
    centroid to ``memory.concept_embedding(name)`` (mean reference embedding). No bank: no adapter.
    ``with_reference_images`` puts the stored reference image paths into the query (a second pass).
    """

    def __init__(
        self, memory: "ConceptMemory", bank: AdapterBank | None = None, *, with_reference_images: bool = False
    ) -> None:
        self.memory = memory
        self.bank = bank
        self.with_reference_images = with_reference_images

    def __call__(self, name: str) -> ConceptQuery:
        concept = self.memory.get(name)  # UnknownConceptError with suggestions
        return concept_query(
            concept,
            bank=self.bank,
            embedding=lambda: self.memory.concept_embedding(concept.name, bank=self.bank),
            with_reference_images=self.with_reference_images,
        )


def summarize(report: DetectionReport) -> str:
    """The short text an agent reads: one line per concept."""
    lines = []
    for d in report.detections:
        lines.append(_line(d))
    return "\n".join(lines) if lines else "No concepts were checked."


def _line(d: Detection) -> str:
    token = f"<{d.concept}>"
    if d.status == "unknown":
        return f"{token}: unknown (the small model's answer could not be read; confidence {d.confidence:.2f})"
    if d.status == "absent":
        return f"{token}: absent (confidence it is present {d.confidence:.2f})"
    where = "; ".join(x for x in (d.location_absolute, d.location_relative) if x)
    text = f"{token}: present (confidence {d.confidence:.2f})"
    if where:
        text += f" at {where}"
    if d.evidence:
        text += f"; evidence: {d.evidence}"
    return text


class PersonalizeTool(BaseTool):
    """Detect the user's personal concepts in a photo with the small, personalized VLM."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "detect_personal_concepts"
    description: str = (
        "Check whether the user's personal concepts (their own pets, people, objects, written like <bo>) appear "
        "in a photo, and where. Input: the photo's path and the concept names. Returns one line per concept: "
        "present/absent/unknown with a confidence, location and visual evidence."
    )
    args_schema: type[BaseModel] = PersonalizeInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool = True
    handle_validation_error: bool = True

    vlm: Any = Field(description="The SmallVLM that runs the detection.")
    resolver: Any = Field(description="Callable[[str], ConceptQuery]; raises UnknownConceptError for unknown names.")
    settings: Optional[Settings] = Field(
        default=None, description="Whose privacy.photo_roots confine the photo path (None: get_settings()).")

    @classmethod
    def from_memory(
        cls, memory: "ConceptMemory", vlm: "SmallVLM", *, with_reference_images: bool = False, **kwargs: Any
    ) -> "PersonalizeTool":
        """The tool over a concept memory, routing with the VLM's own adapter bank; the concepts' reference photos
        go into every query when asked, or when the VLM's recognition compares with them (``reference``)."""
        refs = with_reference_images or vlm.protocol.uses_references
        resolver = MemoryConceptResolver(memory, vlm.bank, with_reference_images=refs)
        return cls(vlm=vlm, resolver=resolver, **{"settings": memory.settings, **kwargs})

    def _resolve(self, names: list[str]) -> list[ConceptQuery]:
        """Queries for ``names`` as users write them (``<Bo>``, ``bo``; repeats once), or one ToolException
        that lists every invalid or unknown name."""
        queries, problems, seen = [], [], set()
        for raw in names:
            try:
                name = normalize_name(raw)
            except InvalidConceptNameError as exc:
                problems.append(f"{exc}.")
                continue
            if name.lower() in seen:
                continue
            seen.add(name.lower())
            try:
                queries.append(self.resolver(name))
            except UnknownConceptError as exc:
                problems.append(str(exc))
            except AdapterBankError as exc:
                raise ToolException(f"Cannot route <{name}> to an adapter: {exc}") from exc
        if problems:
            raise ToolException(" ".join(problems) + " Use the exact names of concepts the user has registered.")
        return queries

    def _run(
        self,
        image: str,
        concepts: list[str],
        question: str | None = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, DetectionReport]:
        from slc.agent.images import load_image

        names = PersonalizeInput(image=image, concepts=concepts).concepts  # also when called without the schema
        with tool_errors(self.name):  # whatever fails below reaches the host's model as a message
            try:  # the path comes from an agent's model: only under the allowed roots, never slc's own data
                photo = load_image(allowed_path(image, self.settings or get_settings()))
            except PathNotAllowedError as exc:
                raise ToolException(str(exc)) from exc
            except InvalidImageError as exc:
                raise ToolException(f"{exc}. Pass the path of a readable photo (JPEG, PNG, WebP...).") from exc
            queries = self._resolve(names)
            detections = self.vlm.detect(photo, queries)
        report = DetectionReport(image=str(image), question=question, detections=detections)
        return summarize(report), report

    async def _arun(
        self,
        image: str,
        concepts: list[str],
        question: str | None = None,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[str, DetectionReport]:
        # The model call is blocking torch work: run it in a worker thread so the event loop stays free.
        return await asyncio.to_thread(self._run, image, concepts, question)
