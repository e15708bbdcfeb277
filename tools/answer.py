"""The whole SLC graph as one LangChain tool: "answer a question about a photo with my personal concepts".

Why one tool and not four: a host agent should not orchestrate recall/detect/verify/answer itself; it
hands over the question and the photo and gets back an answer plus the evidence (as the tool artifact).
Sessions: every call is a turn of a session. Without ``thread_id`` a new session is started; its id is
returned in the result (text and artifact), so the host's model can pass it back to ask a follow-up
question. The session graph has a SQLite checkpointer on ``settings.sessions_path`` (Postgres with
``settings.sessions_url``) unless you give another compiled graph (one without a checkpointer keeps its
sessions in memory for the tool's lifetime). A thread of another tenant is refused. The graph runs on
``services`` (default: the process-wide factory of :mod:`slc.graphs.services`) for the context's tenant.

Privacy: the photo path comes from the host agent's model, so it is read only under
``settings.privacy.photo_roots`` (:func:`slc.graphs.paths.allowed_path`); the graph's runs are traced
without images or paths even under the host's own LangSmith tracer (:mod:`slc.graphs.tracing`).
Failures reach the host's model as a ToolException message (:mod:`slc.tools.errors`), never as an
exception out of the host's run.
"""

from __future__ import annotations

import threading
import uuid
from contextlib import AbstractContextManager

from langchain_core.tools import StructuredTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, Field

from slc.agent.errors import check_question
from slc.graphs.context import Context
from slc.graphs.paths import allowed_path
from slc.graphs.services import ServiceFactory, default_services
from slc.graphs.sessions import ask, open_graph
from slc.tools.errors import tool_errors

TOOL_NAME = "answer_about_photo"
TOOL_DESCRIPTION = (
    "Answer a question about a photo using the user's personal concepts (their pets, people and objects "
    "registered by name, written <name>). Give the question and the path of the photo; omit the photo for "
    "questions about the concepts themselves. Returns the answer, the concepts it relied on and the session "
    "id: pass it as thread_id to ask a follow-up question in the same conversation."
)


class AnswerArgs(BaseModel):
    """Arguments of the answer tool."""

    question: str = Field(min_length=1, description="The user's question, e.g. 'Is <bo> in this photo?'.")
    image_path: str | None = Field(default=None, description="Path of the photo (jpg/png/...); omit for text-only.")
    thread_id: str | None = Field(
        default=None, description="The session id a previous answer returned, to continue that conversation; "
        "omit to start a new one (its id is returned).")


class _LazyGraph:
    """The session graph, opened on first use (constructing the tool opens nothing)."""

    def __init__(self, services: ServiceFactory, graph: CompiledStateGraph | None) -> None:
        self.services = services
        if graph is not None and not isinstance(graph.checkpointer, BaseCheckpointSaver):
            graph = graph.copy(update={"checkpointer": InMemorySaver()})  # sessions for the tool's lifetime
        self._graph = graph
        self._lock = threading.Lock()
        self._cm: AbstractContextManager[CompiledStateGraph] | None = None

    def get(self) -> CompiledStateGraph:
        with self._lock:
            if self._graph is None:
                self._cm = open_graph(services=self.services)
                self._graph = self._cm.__enter__()
            return self._graph


def make_answer_tool(
    graph: CompiledStateGraph | None = None, context: Context | None = None, *, services: ServiceFactory | None = None
) -> StructuredTool:
    """A StructuredTool running the whole SLC graph; its artifact is the TurnResult as a dict, with the session's
    ``thread_id``.

    ``graph``: a compiled SLC graph (default: one on ``services`` with the settings' session checkpointer).
    ``context``: the run's choices, its tenant first (default: settings.tenant).
    """
    services = services or default_services()
    session_graph = _LazyGraph(services, graph)

    def run(question: str, image_path: str | None = None, thread_id: str | None = None) -> tuple[str, dict]:
        thread = thread_id or uuid.uuid4().hex[:12]
        with tool_errors(TOOL_NAME):  # a bad or forbidden image, another tenant's thread...: a message, no crash
            check_question(question, services.settings.max_question_chars)  # before any graph or session opens
            photo = allowed_path(image_path, services.settings) if image_path else None
            res = ask(session_graph.get(), question, photo, thread_id=thread, context=context,
                      settings=services.settings)
        text = res.answer.text
        if res.answer.concepts_used:
            text += "\n(concepts used: " + ", ".join(f"<{c}>" for c in res.answer.concepts_used) + ")"
        text += f"\n(session: {thread}; pass thread_id={thread!r} to continue it)"
        artifact = {
            "thread_id": thread,
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
        response_format="content_and_artifact", handle_tool_error=True, handle_validation_error=True,
    )


__all__ = ["AnswerArgs", "TOOL_DESCRIPTION", "TOOL_NAME", "make_answer_tool"]
