"""One async body per graph node, runnable from ``invoke`` (sync) and ``ainvoke`` / ``astream`` (async).

Why: LangGraph cannot run an async-only node under ``invoke`` ("No synchronous function provided"), and
writing each node twice would make two copies of every rule. So a node is one ``async def`` that does its
blocking work and its model calls only through a :class:`Calls` object, and is registered as a
:class:`GraphNode` with two paths: under ``ainvoke`` the calls go off the event loop (``asyncio.to_thread``
for torch, Chroma and image work; ``await model.ainvoke`` for the large VLM, real async I/O for HTTP
endpoints); under ``invoke`` they run in place, so no await ever suspends and :func:`run_inline` drives
the coroutine to its end without an event loop (no loop per node, and it works where the caller's thread
already runs one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.runtime import Runtime, get_runtime

from slc.agent.large_vlm import CallAttempts, acall_large_vlm, call_large_vlm
from slc.graphs.context import Context, RunOptions
from slc.graphs.services import ServiceFactory, default_services
from slc.graphs.state import State

T = TypeVar("T")
In = TypeVar("In")
Out = TypeVar("Out")


class Calls(Protocol):
    """How a node runs what may block: plain functions, runnables, and the large VLM."""

    async def blocking(self, fn: Callable[[], T]) -> T: ...

    async def runnable(self, runnable: Runnable[In, Out], value: In, config: RunnableConfig) -> Out: ...

    async def chat(self, model: BaseChatModel, messages: Sequence[BaseMessage], config: RunnableConfig, *,
                   deadline_s: float | None = None, attempts: CallAttempts | None = None) -> BaseMessage: ...


class InlineCalls:
    """Under ``invoke``: everything runs in place and returns at once (nothing ever suspends)."""

    async def blocking(self, fn: Callable[[], T]) -> T:
        return fn()

    async def runnable(self, runnable: Runnable[In, Out], value: In, config: RunnableConfig) -> Out:
        return runnable.invoke(value, config=config)

    async def chat(self, model: BaseChatModel, messages: Sequence[BaseMessage], config: RunnableConfig, *,
                   deadline_s: float | None = None, attempts: CallAttempts | None = None) -> BaseMessage:
        return call_large_vlm(model, messages, config=config, deadline_s=deadline_s, attempts=attempts)


class AsyncCalls:
    """Under ``ainvoke``: blocking work in a worker thread, the large VLM through its own async client."""

    async def blocking(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)

    async def runnable(self, runnable: Runnable[In, Out], value: In, config: RunnableConfig) -> Out:
        return await runnable.ainvoke(value, config=config)

    async def chat(self, model: BaseChatModel, messages: Sequence[BaseMessage], config: RunnableConfig, *,
                   deadline_s: float | None = None, attempts: CallAttempts | None = None) -> BaseMessage:
        return await acall_large_vlm(model, messages, config=config, deadline_s=deadline_s, attempts=attempts)


def run_inline(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a node coroutine whose awaits all complete in place (:class:`InlineCalls`)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a graph node awaited real async work under a synchronous invoke; use Calls for it")


NodeBody = Callable[[State, Runtime[Context], ServiceFactory, Calls], Awaitable[dict[str, Any]]]

_INLINE = InlineCalls()
_ASYNC = AsyncCalls()


class GraphNode(Runnable[State, dict[str, Any]]):
    """A node body bound to its services, as a runnable with a sync (``invoke``) and an async (``ainvoke``) path.

    Why not ``RunnableLambda(func, afunc=...)``: it opens a traced child run under the node's own run and
    inspects the function's signature on every call, which cost ~0.7 ms per node (a quarter of the graph's
    own overhead per turn, benchmarks/graph_overhead.py); LangGraph already traces each node as a run, and
    this adds nothing to it (like LangGraph's own function nodes). The run's context comes from
    :func:`langgraph.runtime.get_runtime`.
    """

    def __init__(self, name: str, body: NodeBody, services: ServiceFactory | None) -> None:
        self.name = name
        self.body = body
        self.services = services  # None: the process-wide default_services(), looked up when the node runs

    def _services(self, runtime: Runtime[Context]) -> ServiceFactory:
        """The run's tenant's view of the services: a node reaches no other tenant's memory or photos."""
        services = self.services or default_services()
        return services.for_tenant(RunOptions.resolve(runtime.context, services.settings).tenant)

    def invoke(self, input: State, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        runtime = get_runtime(Context)
        return run_inline(self.body(input, runtime, self._services(runtime), _INLINE))

    async def ainvoke(self, input: State, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        runtime = get_runtime(Context)
        return await self.body(input, runtime, self._services(runtime), _ASYNC)


__all__ = ["AsyncCalls", "Calls", "GraphNode", "InlineCalls", "NodeBody", "run_inline"]
