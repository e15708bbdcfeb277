"""What every run of the SLC graph passes before its first node: :class:`GuardedGraph`.

Why in the compiled graph: the graph is run by the CLI, ``slc.graphs.sessions``, the tools inside a host's
agent, LangGraph Server / Studio (``langgraph.json`` serves the module-level ``graph``) and anyone's own
``graph.invoke``; every one of those calls ends in ``stream``/``astream`` (``invoke``, ``ainvoke``,
``astream_events`` included), so rules kept there hold for all of them, with no entry point to forget:

1. The tenant: the run's ``Context.tenant`` (else settings); under LangGraph Server with custom auth
   (:mod:`slc.graphs.auth`), the authenticated caller, never a field the client sets
   (:class:`TenantAccessError` if the context names someone else).
2. The thread: owned by the tenant that started it, one turn at a time (:mod:`slc.graphs.threads`);
   every checkpoint the run writes names its tenant; once the run has ended, the thread keeps only its
   newest ``settings.checkpoints_per_thread`` checkpoints (still under the thread's lock).
3. The photo, given as the ``image`` input or inside the chat messages (image content blocks, as Studio's
   chat and Agent Chat UI send it): stored in the tenant's query-photo store before the run starts, size
   bounded, path inputs confined (:func:`slc.graphs.photos.admit_photo`,
   :func:`slc.graphs.message_photos.admit_message_photos`), so input, state, checkpoints and traces hold its
   hash only.
4. The question: the ``question`` input and the text of each human message are at most
   ``settings.max_question_chars`` characters (:class:`~slc.agent.errors.QuestionTooLongError`, checked first:
   a refused run stores nothing, not even its photo).
5. The trace: the run's LangSmith tracers, whoever attached them, post through redacting clients
   (:func:`slc.graphs.tracing.private_callbacks`) unless the run's redaction is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from langchain_core.runnables.config import ensure_config, merge_configs, var_child_runnable_config
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from slc.agent.errors import InvalidImageError, SLCError, check_question
from slc.agent.settings import Settings
from slc.graphs.context import Context, RunOptions
from slc.graphs.message_photos import admit_message_photos, human_texts
from slc.graphs.photos import admit_photo
from slc.graphs.services import ServiceFactory, default_services
from slc.graphs.threads import OWNER_KEY, aprune_thread, athread_turn, prune_thread, thread_turn
from slc.graphs.tracing import private_callbacks

#: Where LangGraph Server puts the authenticated caller's identity (its custom auth; clients cannot set it).
AUTH_USER_KEY = "langgraph_auth_user_id"
_DONE = object()


class TenantAccessError(SLCError):
    """A run names a tenant that is not its authenticated caller."""


def bind_context(context: Context | dict[str, Any] | None, config: dict[str, Any], settings: Settings) -> tuple[Context, RunOptions]:
    """The run's context with its tenant bound (rule 1 of the module docstring), and its resolved options."""
    ctx = Context(**context) if isinstance(context, dict) else (context or Context())
    caller = (config.get("configurable") or {}).get(AUTH_USER_KEY)
    if caller:
        if ctx.tenant not in (None, caller):
            raise TenantAccessError(f"This run is authenticated as tenant {caller!r}; its context may not name another tenant")
        ctx = dataclasses.replace(ctx, tenant=str(caller))
    return ctx, RunOptions.resolve(ctx, settings)


def _fields(input: Any) -> dict[str, Any] | None:
    if isinstance(input, dict):
        return input
    if dataclasses.is_dataclass(input) and not isinstance(input, type):
        return {f.name: getattr(input, f.name) for f in dataclasses.fields(input)}
    return None


def check_input_question(input: Any, limit: int) -> None:
    """Refuse (:class:`QuestionTooLongError`) an input whose ``question`` or the text of one of its human
    messages is longer than ``limit`` characters: before its photo is stored, before its first checkpoint."""
    fields = _fields(input) or {}
    check_question(fields.get("question"), limit)
    if fields.get("messages"):
        for text in human_texts(fields["messages"]):
            check_question(text, limit)


def _with_photo(input: Any, sha_of: Callable[[Any], str]) -> Any:
    """``input`` with its photo, the ``image`` field or one inside its chat messages
    (:mod:`slc.graphs.message_photos`), replaced by ``sha_of(photo)`` (inputs without a photo as they are)."""
    fields = _fields(input)
    if fields is None:
        return input
    update: dict[str, Any] = {}
    message_photo = None
    if fields.get("messages"):
        update["messages"], message_photo = admit_message_photos(fields["messages"], sha_of)
    photo = sha_of(fields["image"]) if fields.get("image") else None
    if photo and message_photo and photo != message_photo:
        raise InvalidImageError(
            "This turn carries two different photos (the `image` input and one in its message): a question is "
            "about one photo: send one")
    if photo or message_photo:
        update["image"] = photo or message_photo
    if not update:
        return input
    return {**input, **update} if isinstance(input, dict) else dataclasses.replace(input, **update)


class _Run:
    """One admitted run: its bound context, its config (tenant stamped, tracing private) and its thread."""

    def __init__(self, graph: GuardedGraph, config: dict[str, Any] | None, context: Any) -> None:
        self.services = graph.services or default_services()
        self.settings = self.services.settings
        merged = ensure_config(config)  # the caller's config over an enclosing run's (a host agent's tool call)
        self.context, self.opts = bind_context(context, merged, self.settings)
        saver = graph.checkpointer
        thread = (merged.get("configurable") or {}).get("thread_id")
        self.thread: tuple[BaseCheckpointSaver, str] | None = (
            (saver, str(thread)) if isinstance(saver, BaseCheckpointSaver) and thread else None)
        cfg = dict(config or {})
        cfg["metadata"] = {**(cfg.get("metadata") or {}), OWNER_KEY: self.opts.tenant}
        # The enclosing run's callbacks travel in our config, made private, and leave the ambient config:
        # LangGraph would otherwise merge the enclosing tracers back in as they are.
        ambient = var_child_runnable_config.get()
        enclosing = (ambient or {}).get("callbacks")
        callbacks = merge_configs({"callbacks": enclosing}, {"callbacks": cfg.get("callbacks")}).get("callbacks")
        cfg["callbacks"] = private_callbacks(callbacks, self.settings, redact_images=self.opts.redact_images)
        self.config = cfg
        self.quiet_ambient = {**ambient, "callbacks": None} if ambient and enclosing is not None else None

    def admit(self, input: Any) -> Any:
        """``input`` with its photo stored in the tenant's query-photo store and named by its sha256 (its question
        bounded first: a refused turn stores nothing)."""
        check_input_question(input, self.settings.max_question_chars)
        return _with_photo(input, lambda image: admit_photo(self.services.image_store(self.opts.tenant), image, self.settings))

    @contextlib.contextmanager
    def started(self) -> Iterator[None]:
        """Around the inner graph's first step, where it reads the ambient config: without its tracers."""
        if self.quiet_ambient is None:
            yield
            return
        token = var_child_runnable_config.set(self.quiet_ambient)  # type: ignore[arg-type]
        try:
            yield
        finally:
            var_child_runnable_config.reset(token)


class GuardedGraph(CompiledStateGraph):
    """The compiled SLC graph whose every run passes the rules of the module docstring first.

    ``services``: the factory its nodes are bound to (None: the process-wide default), for the settings
    and the tenant's photo store. Build it with :func:`slc.graphs.slc.compile_graph` (or compile
    :func:`slc.graphs.slc.build_graph`); it is a ``CompiledStateGraph`` in every other respect.
    """

    def __init__(self, *, services: ServiceFactory | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services

    @classmethod
    def of(cls, compiled: CompiledStateGraph, services: ServiceFactory | None) -> GuardedGraph:
        """``compiled`` (fresh from ``StateGraph.compile``) as a GuardedGraph: the same object state."""
        graph = cls.__new__(cls)
        graph.__dict__.update({k: v for k, v in compiled.__dict__.items() if k != "__orig_class__"})
        graph.services = services
        return graph

    def stream(self, input: Any, config: Any = None, *, context: Any = None, **kwargs: Any) -> Iterator[Any]:
        run = _Run(self, config, context)
        turn = thread_turn(*run.thread, run.opts.tenant, run.settings) if run.thread else contextlib.nullcontext()
        with turn:
            inner = super().stream(run.admit(input), run.config, context=run.context, **kwargs)
            try:
                with run.started():
                    first = next(inner, _DONE)
                if first is _DONE:
                    return
                yield first
                yield from inner
            finally:
                inner.close()
            if run.thread:
                prune_thread(*run.thread, run.settings.checkpoints_per_thread)

    async def astream(self, input: Any, config: Any = None, *, context: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        run = await asyncio.to_thread(_Run, self, config, context)  # settings, clients: file reads, off the loop
        turn = athread_turn(*run.thread, run.opts.tenant, run.settings) if run.thread else contextlib.nullcontext()
        async with turn:
            admitted = await asyncio.to_thread(run.admit, input)
            inner = super().astream(admitted, run.config, context=run.context, **kwargs)
            try:
                with run.started():
                    first = await anext(inner, _DONE)
                if first is _DONE:
                    return
                yield first
                async for chunk in inner:
                    yield chunk
            finally:
                await inner.aclose()
            if run.thread:
                await aprune_thread(*run.thread, run.settings.checkpoints_per_thread)


__all__ = ["AUTH_USER_KEY", "GuardedGraph", "TenantAccessError", "bind_context", "check_input_question"]
