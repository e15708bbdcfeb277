"""A :class:`~slc.agent.detection.ConceptQuery` -> the small VLM's prompt text (templates in agent/prompts.py).

Why one place: the runtime asks, training teaches and the evals score with these exact strings; a trained
adapter must be asked at inference what it learned (see slc.training.data).
"""

from __future__ import annotations

from typing import Literal

from slc.agent import prompts as P
from slc.agent.detection import ConceptQuery

PromptKind = Literal["recognize", "detect", "strict"]


def concept_context(query: ConceptQuery) -> str:
    """The concept facts every prompt starts with (category, description, identity attributes)."""
    category = P.SMALL_CONCEPT_CATEGORY.format(category=query.category) if query.category else ""
    description = P.SMALL_CONCEPT_DESCRIPTION.format(description=query.description.strip()) if query.description.strip() else ""
    attributes = (
        P.SMALL_CONCEPT_ATTRIBUTES.format(attributes="; ".join(f"{k}: {v}" for k, v in query.attributes.items()))
        if query.attributes
        else ""
    )
    return P.SMALL_CONCEPT_CONTEXT.format(token=query.token, category=category, description=description, attributes=attributes)


def build_prompt(query: ConceptQuery, kind: PromptKind, n_refs: int) -> str:
    """The user text for one concept (the images are placed before it by ``chat_inputs``)."""
    template = {"recognize": P.SMALL_RECOGNIZE, "detect": P.SMALL_DETECT, "strict": P.SMALL_DETECT_STRICT}[kind]
    references = " " + P.SMALL_REFERENCES.format(n_refs=n_refs, token=query.token) if n_refs else ""
    feedback = P.SMALL_FEEDBACK.format(feedback=query.feedback.strip()) if query.feedback and query.feedback.strip() else ""
    return template.format(
        context=concept_context(query), references=references, feedback=feedback, token=query.token, name=query.name
    )


def missing_identity(query: ConceptQuery) -> str | None:
    """Why ``recognition="likelihood"`` cannot score this concept (None when it can)."""
    if not query.category or not query.attributes:
        return (f"concept {query.token} has no category/identity attributes, which likelihood recognition "
                "scores; store its identity (ConceptMemory.update(identity=...)) or use a yes_no bank")
    return None


def identity_text(query: ConceptQuery) -> str:
    """'a star; colour: red; pattern: solid; accessory: none': the concept's category and identity
    attributes in the form the describe turn answers in (``recognition="likelihood"`` scores exactly this
    text). Raises ValueError for a concept without category or attributes (nothing to score)."""
    reason = missing_identity(query)
    if reason:
        raise ValueError(reason)
    return f"a {query.category}; " + "; ".join(f"{k}: {v}" for k, v in query.attributes.items())


def parse_identity_text(text: str) -> tuple[str, dict[str, str]] | None:
    """The inverse of :func:`identity_text`: 'a star; colour: red; pattern: solid' -> ("star", {...}); None for
    text of another form (a model that describes in free prose)."""
    parts = [p.strip() for p in (text or "").strip().rstrip(".").split(";")]
    head = parts[0]
    for article in ("an ", "a "):
        head = head.removeprefix(article)
    attrs = {}
    for p in parts[1:]:
        key, sep, value = p.partition(":")
        if not sep or not key.strip() or not value.strip():
            return None
        attrs[key.strip()] = value.strip()
    if not head or " " in head.strip() or not attrs:
        return None
    return head.strip(), attrs


__all__ = ["PromptKind", "build_prompt", "concept_context", "identity_text", "missing_identity", "parse_identity_text"]
