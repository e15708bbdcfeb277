"""Memory tools for host agents: remember, recall and forget a personal concept.

Why tools and not just the CLI: a chat agent learns concepts in conversation ("this is my dog Bo",
with photos) and must be able to register, look up and delete them itself. Errors (bad name, duplicate,
unknown concept, unreadable image) come back to the agent as tool errors with the project's message,
so it can ask the user instead of crashing. Memory is the context's tenant's, from the service factory
(default: the process-wide one), opened on first use. Photo paths come from the agent's model, so they
are read only under ``settings.privacy.photo_roots`` (:func:`slc.graphs.paths.allowed_path`): never
another tenant's stored photo, never an arbitrary file of the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.tools import StructuredTool, ToolException
from pydantic import BaseModel, Field

from slc.agent.errors import SLCError
from slc.graphs.context import Context
from slc.graphs.paths import allowed_path
from slc.graphs.services import ServiceFactory, default_services
from slc.memory.store import ConceptMemory


class RememberArgs(BaseModel):
    name: str = Field(min_length=1, description="Short name of the concept, e.g. 'bo' (used as <bo>).")
    image_paths: list[str] = Field(min_length=1, description="Paths of 1+ photos showing the concept.")
    description: str = Field(default="", description="What it is and what makes it recognizable.")
    category: str | None = Field(default=None, description="Its category, e.g. 'dog', 'mug', 'person'.")


class RecallArgs(BaseModel):
    query: str | None = Field(default=None, description="Text naming concepts (e.g. 'is bo here?').")
    image_path: str | None = Field(default=None, description="A photo: returns the known concepts that look close.")


class ForgetArgs(BaseModel):
    name: str = Field(min_length=1, description="Name of the concept to delete.")


def _guard(fn: Any) -> Any:
    def wrapped(**kw: Any) -> Any:
        try:
            return fn(**kw)
        except SLCError as exc:
            raise ToolException(str(exc)) from exc

    return wrapped


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
        c = mem().add(name, [readable(p) for p in image_paths], description=description, category=category)
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

    return [
        StructuredTool.from_function(func=_guard(remember), name="remember_concept", args_schema=RememberArgs,
                                     description="Register a personal concept (name + photos + description).",
                                     handle_tool_error=True),
        StructuredTool.from_function(func=_guard(recall), name="recall_concepts", args_schema=RecallArgs,
                                     description="Look up the user's personal concepts by name/text or by photo.",
                                     handle_tool_error=True),
        StructuredTool.from_function(func=_guard(forget), name="forget_concept", args_schema=ForgetArgs,
                                     description="Delete a personal concept and its photos.", handle_tool_error=True),
    ]


__all__ = ["ForgetArgs", "RecallArgs", "RememberArgs", "make_memory_tools"]
