"""The whole SLC graph as one LangChain tool: "answer a question about a photo with my personal concepts".

Why one tool and not four: a host agent should not orchestrate recall/detect/verify/answer itself; it
hands over the question and the photo and gets back an answer plus the evidence (as the tool artifact).
Sessions: pass ``thread_id`` to continue a conversation (the tool's graph has a SQLite checkpointer on
``settings.sessions_path`` unless you give it another compiled graph); a thread of another tenant is
refused, and a question without ``thread_id`` keeps no session at all. The graph runs on ``services``
(default: the process-wide factory of :mod:`slc.graphs.services`) for the context's tenant.

Privacy: the photo path comes from the host agent's model, so it is read only under
``settings.privacy.photo_roots`` (:func:`slc.graphs.paths.allowed_path`); the graph's runs are traced
without images or paths even under the host's own LangSmith tracer (:mod:`slc.graphs.tracing`).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager

from langchain_core.tools import StructuredTool, ToolException
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, Field

from slc.agent.errors import SLCError
from slc.graphs.context import Context
from slc.graphs.paths import allowed_path
from slc.graphs.services import ServiceFactory, default_services
from slc.graphs.sessions import ask, open_graph
from slc.graphs.slc import compile_graph

TOOL_NAME = "answer_about_photo"
TOOL_DESCRIPTION = (
    "Answer a question about a photo using the user's personal concepts (their pets, people and objects "
    "registered by name, written <name>). Give the question and the path of the photo; omit the photo for "
    "questions about the concepts themselves. Returns the answer and the concepts it relied on."
)


class AnswerArgs(BaseModel):
    """Arguments of the answer tool."""

    question: str = Field(min_length=1, description="The user's question, e.g. 'Is <bo> in this photo?'.")
    image_path: str | None = Field(default=None, description="Path of the photo (jpg/png/...); omit for text-only.")
    thread_id: str | None = Field(default=None, description="Conversation id to continue a session.")


class _LazyGraphs:
    """The session graph (SQLite checkpointer, opened on first use: constructing the tool opens nothing) and
    the one-off graph that keeps nothing, for questions without a thread."""

    def __init__(self, services: ServiceFactory, graph: CompiledStateGraph | None) -> None:
        self.services = services
        self._graph = graph
        self._one_off: CompiledStateGraph | None = None
        self._lock = threading.Lock()
        self._cm: AbstractContextManager[CompiledStateGraph] | None = None

    def get(self, thread_id: str | None) -> CompiledStateGraph:
        with self._lock:
            if thread_id:
                if self._graph is None:
                    self._cm = open_graph(services=self.services)
                    self._graph = self._cm.__enter__()
                return self._graph
            if self._one_off is None:  # False: neither a checkpointer of its own nor an enclosing host graph's
                self._one_off = (self._graph.copy(update={"checkpointer": False}) if self._graph is not None
                                 else compile_graph(checkpointer=False, services=self.services))
            return self._one_off


def make_answer_tool(
    graph: CompiledStateGraph | None = None, context: Context | None = None, *, services: ServiceFactory | None = None
) -> StructuredTool:
    """A StructuredTool running the whole SLC graph; its artifact is the TurnResult as a dict.

    ``graph``: a compiled SLC graph (default: one on ``services`` with a SQLite session checkpointer).
    ``context``: the run's choices, its tenant first (default: settings.tenant).
    """
    services = services or default_services()
    graphs = _LazyGraphs(services, graph)

    def run(question: str, image_path: str | None = None, thread_id: str | None = None) -> tuple[str, dict]:
        try:
            photo = allowed_path(image_path, services.settings) if image_path else None
            res = ask(graphs.get(thread_id), question, photo, thread_id=thread_id, context=context,
                      settings=services.settings)
        except SLCError as exc:  # bad or forbidden image, another tenant's thread...: tell the agent, don't crash it
            raise ToolException(str(exc)) from exc
        text = res.answer.text
        if res.answer.concepts_used:
            text += "\n(concepts used: " + ", ".join(f"<{c}>" for c in res.answer.concepts_used) + ")"
        artifact = {
            "answer": res.answer.model_dump(),
            "final": [f.model_dump() for f in res.final],
            "verdicts": [v.model_dump() for v in res.verdicts],
            "flags": res.flags,
            "degraded": res.degraded,
            "large_vlm_calls": res.large_vlm_calls,
            "image": res.image,
        }
        return text, artifact

    return StructuredTool.from_function(
        func=run, name=TOOL_NAME, description=TOOL_DESCRIPTION, args_schema=AnswerArgs,
        response_format="content_and_artifact", handle_tool_error=True,
    )


__all__ = ["AnswerArgs", "TOOL_DESCRIPTION", "TOOL_NAME", "make_answer_tool"]
