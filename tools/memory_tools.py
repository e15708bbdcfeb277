"""Memory tools for host agents: remember, recall and forget a personal concept.

Why tools and not just the CLI: a chat agent learns concepts in conversation ("this is my dog Bo",
with photos) and must be able to register, look up and delete them itself. Errors (bad name, duplicate,
unknown concept, unreadable image, and any fault under them) come back to the agent as tool errors with
a message (:mod:`slc.tools.errors`), so it can ask the user instead of crashing. Deleting is the one
destructive tool: its description tells the host's model to call it only when the user explicitly asks. Memory is the context's tenant's, from the service factory
(default: the process-wide one), opened on first use. Photo paths come from the agent's model, so they
are read only under ``settings.privacy.photo_roots`` (:func:`slc.graphs.paths.allowed_path`): never
another tenant's stored photo, never an arbitrary file of the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from slc.graphs.context import Context
from slc.graphs.paths import allowed_path
from slc.graphs.registration import register_concept
from slc.graphs.services import ServiceFactory, default_services
from slc.memory.store import ConceptMemory
from slc.tools.errors import tool_errors


class RememberArgs(BaseModel):
    name: str = Field(min_length=1, description="Short name of the concept, e.g. 'bo' (used as <bo>).")
    image_paths: list[str] = Field(min_length=1, description="Paths of 1+ photos showing the concept.")
    description: str = Field(default="", description="What it is and what makes it recognizable.")
    category: str | None = Field(default=None, description="Its category, e.g. 'dog', 'mug', 'person'.")


class RecallArgs(BaseModel):
    query: str | None = Field(default=None, description="Text naming concepts (e.g. 'is bo here?').")
    image_path: str | None = Field(default=None, description="A photo: returns the known concepts that look close.")


class ForgetArgs(BaseModel):
    name: str = Field(min_length=1, description="Name of the concept the user asked to delete.")


def _guarded(tool: str, fn: Any) -> Any:
    def wrapped(**kw: Any) -> Any:
        with tool_errors(tool):
            return fn(**kw)

    return wrapped


FORGET_DESCRIPTION = (
    "Permanently delete one of the user's personal concepts: its name, description, photos and embeddings. "
    "This cannot be undone. Call it ONLY when the user explicitly asks to forget or delete that concept by "
    "name in this conversation; never to tidy up, to fix a mistake of yours, or on your own initiative."
)


def make_memory_tools(
    context: Context | None = None, memory: ConceptMemory | None = None, *, services: ServiceFactory | None = None
) -> list[StructuredTool]:
    """``[remember_concept, recall_concepts, forget_concept]`` bound to one tenant's memory (``memory``, else
    the memory of the context's tenant from ``services``)."""
    tenant = context.tenant if context is not None else None

    def mem() -> ConceptMemory:
        return memory if memory is not None else (services or default_services()).memory(tenant)

    def readable(path: str) -> Path:
        return allowed_path(path, mem().settings)

    def remember(name: str, image_paths: list[str], description: str = "", category: str | None = None) -> str:
        c = register_concept(services or default_services(), name, [readable(p) for p in image_paths],
                             tenant=tenant, memory=mem(), description=description, category=category)
        return f"Remembered <{c.name}> ({c.category or 'no category'}) from {len(c.images)} image(s)."

    def recall(query: str | None = None, image_path: str | None = None) -> str:
        if not query and not image_path:
            names = [c.name for c in mem().list()]
            return "Known concepts: " + (", ".join(f"<{n}>" for n in names) if names else "none")
        hits = mem().recall(text=query, image=readable(image_path) if image_path else None)
        if not hits:
            return "No known concept matches."
        return "\n".join(
            f"<{h.concept.name}>: {h.concept.category or '?'}; {h.concept.description or 'no description'} "
            f"(matched by {', '.join(h.matched_by)}, score {h.score:.2f})"
            for h in hits
        )

    def forget(name: str) -> str:
        mem().delete(name)
        return f"Forgot <{name.strip('<>')}>."

    specs = (
        ("remember_concept", remember, RememberArgs, "Register a personal concept (name + photos + description)."),
        ("recall_concepts", recall, RecallArgs, "Look up the user's personal concepts by name/text or by photo."),
        ("forget_concept", forget, ForgetArgs, FORGET_DESCRIPTION),
    )
    return [StructuredTool.from_function(func=_guarded(name, fn), name=name, args_schema=schema, description=text,
                                         handle_tool_error=True, handle_validation_error=True)
            for name, fn, schema, text in specs]


__all__ = ["FORGET_DESCRIPTION", "ForgetArgs", "RecallArgs", "RememberArgs", "make_memory_tools"]
