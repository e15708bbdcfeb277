"""The SLC answer graph: recall -> personalize -> reflect -(disputed, round < R)-> personalize ... -> reason.

Text-only questions, and images in which no concept was recalled, go recall -> reason. With
``Context(reflect=False)`` personalize goes straight to reason (no verification at all). The module-level
``graph`` (compiled without a checkpointer: LangGraph Server / ``langgraph dev`` bring their own) is what
langgraph.json points at; importing this module builds the graph only (no model, no store is opened:
those are resolved from settings on the first node that needs them, see slc.graphs.context).
For sessions in-process use :func:`slc.graphs.sessions.open_graph`, which compiles with a checkpointer.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from slc.graphs.context import Context
from slc.graphs.nodes import context_of, personalize, reason, recall, reflect
from slc.graphs.state import InputState, State


def route_after_recall(state: State) -> Literal["personalize", "reason"]:
    """Detection only makes sense with an image and at least one candidate concept."""
    return "personalize" if state.image and state.candidates else "reason"


def route_after_personalize(state: State, runtime: Runtime[Context]) -> Literal["reflect", "reason"]:
    """Verify the claims unless the run switched reflection off (``Context.reflect=False``)."""
    return "reflect" if context_of(runtime).reflect else "reason"


def route_after_reflect(state: State) -> Literal["personalize", "reason"]:
    """Loop back while reflect queued disputed concepts (it queues none once the round bound is hit)."""
    return "personalize" if state.pending and not state.degraded else "reason"


def build_graph() -> StateGraph:
    """The uncompiled builder (compile it with your own checkpointer, store, name...)."""
    builder = StateGraph(State, input_schema=InputState, context_schema=Context)
    builder.add_node("recall", recall)
    builder.add_node("personalize", personalize)
    builder.add_node("reflect", reflect)
    builder.add_node("reason", reason)
    builder.add_edge(START, "recall")
    builder.add_conditional_edges("recall", route_after_recall)
    builder.add_conditional_edges("personalize", route_after_personalize)
    builder.add_conditional_edges("reflect", route_after_reflect)
    builder.add_edge("reason", END)
    return builder


def compile_graph(checkpointer: Any = None, **kwargs: Any) -> Any:
    """``build_graph().compile(name="slc", ...)``."""
    return build_graph().compile(checkpointer=checkpointer, name="slc", **kwargs)


graph = compile_graph()

__all__ = ["build_graph", "compile_graph", "graph", "route_after_personalize", "route_after_recall", "route_after_reflect"]
