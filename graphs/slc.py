"""The SLC answer graph: recall -> personalize -> reflect -(disputed, round < R)-> personalize ... -> reason.

Text-only questions, and images in which no concept was recalled, go recall -> reason. With
``Context(reflect=False)`` personalize goes straight to reason (no verification at all). The nodes are
bound to a :class:`~slc.graphs.services.ServiceFactory` when the graph is built, and whatever compiles the
builder gets a :class:`~slc.graphs.guard.GuardedGraph`: tenant, thread, photo and trace rules hold for every
run, however it is started. The module-level
``graph`` (compiled without a checkpointer: LangGraph Server / ``langgraph dev`` bring their own) is what
langgraph.json points at; it runs on the process-wide :func:`~slc.graphs.services.default_services`, so
importing this module builds the graph only (no model, no store is opened before a node needs them).
For sessions in-process use :func:`slc.graphs.sessions.open_graph`, which compiles with a checkpointer.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from slc.graphs.context import Context
from slc.graphs.execution import GraphNode
from slc.graphs.guard import GuardedGraph
from slc.graphs.nodes import personalize, reason, recall, reflect
from slc.graphs.services import ServiceFactory
from slc.graphs.state import InputState, State


def route_after_recall(state: State) -> Literal["personalize", "reason"]:
    """Detection only makes sense with an image and at least one candidate concept."""
    return "personalize" if state.image and state.candidates else "reason"


def route_after_personalize(state: State, runtime: Runtime[Context]) -> Literal["reflect", "reason"]:
    """Verify the claims unless the run switched reflection off (``Context.reflect=False``)."""
    return "reflect" if runtime.context is None or runtime.context.reflect else "reason"


def route_after_reflect(state: State) -> Literal["personalize", "reason"]:
    """Loop back while reflect queued disputed concepts (it queues none once the round bound is hit)."""
    return "personalize" if state.pending and not state.degraded else "reason"


class SLCBuilder(StateGraph):
    """The SLC graph's builder: ``compile`` gives a :class:`~slc.graphs.guard.GuardedGraph` on its services."""

    def __init__(self, services: ServiceFactory | None) -> None:
        super().__init__(State, input_schema=InputState, context_schema=Context)
        self.services = services

    def compile(self, *args: Any, **kwargs: Any) -> GuardedGraph:  # type: ignore[override]
        return GuardedGraph.of(super().compile(*args, **kwargs), self.services)


def build_graph(services: ServiceFactory | None = None) -> SLCBuilder:
    """The uncompiled builder, its nodes bound to ``services`` (None: the process-wide default factory).

    Compile it with your own checkpointer, store, name...
    """
    builder = SLCBuilder(services)
    for name, body in (("recall", recall), ("personalize", personalize), ("reflect", reflect), ("reason", reason)):
        builder.add_node(name, GraphNode(name, body, services))
    builder.add_edge(START, "recall")
    builder.add_conditional_edges("recall", route_after_recall)
    builder.add_conditional_edges("personalize", route_after_personalize)
    builder.add_conditional_edges("reflect", route_after_reflect)
    builder.add_edge("reason", END)
    return builder


def compile_graph(
    checkpointer: BaseCheckpointSaver | None = None, *, services: ServiceFactory | None = None, **kwargs: Any
) -> GuardedGraph:
    """``build_graph(services).compile(name="slc", ...)``."""
    return build_graph(services).compile(checkpointer=checkpointer, name="slc", **kwargs)


graph = compile_graph()

__all__ = ["SLCBuilder", "build_graph", "compile_graph", "graph", "route_after_personalize", "route_after_recall", "route_after_reflect"]
