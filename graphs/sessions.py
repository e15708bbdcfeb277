"""Chat sessions: the graph compiled with a checkpointer keyed by thread_id, and one-call turns.

Why here: SQLite under the data dir is the default (one file, nothing to run); Postgres is for many
users/processes (``settings.sessions_url``) and is only imported when configured, so the optional
``postgres`` extra is not needed otherwise. A turn's photo is stored by content hash in the tenant's
query-photo store when the graph admits the run; checkpoints only ever hold the hash. A thread belongs
to the tenant that started it and runs one turn at a time (:mod:`slc.graphs.threads`, enforced by the
graph itself, :class:`~slc.graphs.guard.GuardedGraph`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock
from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from slc.agent.images import ImageSource
from slc.agent.settings import Settings, get_settings
from slc.graphs.context import Context, RunOptions
from slc.graphs.photos import photo_input
from slc.graphs.services import ServiceFactory
from slc.graphs.slc import compile_graph
from slc.graphs.state import Answer, FinalDetection, Verdict
from slc.graphs.threads import check_owner, thread_owner
from slc.graphs.tracing import run_config
from slc.graphs.transcripts import read_transcript

#: Our own types that may be revived from checkpoints (LangGraph warns about, or in strict mode refuses,
#: any other non-standard type).
ALLOWED_TYPES = [
    ("slc.graphs.state", "Candidate"),
    ("slc.graphs.state", "Verdict"),
    ("slc.graphs.state", "FinalDetection"),
    ("slc.graphs.state", "Answer"),
    ("slc.agent.detection", "Detection"),
]


def serializer() -> JsonPlusSerializer:
    return JsonPlusSerializer(allowed_msgpack_modules=ALLOWED_TYPES)


#: WAL + synchronous=NORMAL: no fsync per commit (a commit cost ~16 ms on a busy disk here, and LangGraph
#: commits after every node). The DB cannot be corrupted by a crash; at worst the last turns before a power
#: loss / OS crash are lost (an application crash loses nothing).
_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")


def _migration_lock(db: Path) -> FileLock:
    """Held while a connection sets the sessions file's journal mode and creates or migrates its tables:
    LangGraph's SqliteStore.setup applies and records each migration unguarded, and switching a new file to
    WAL while another connection is at it fails at once ("database is locked"), so two first turns at once
    (threads or processes) on a new sessions file used to fail."""
    return FileLock(str(db) + ".setup.lock", thread_local=False)  # async callers acquire it in a worker thread


def _prepare(conn: sqlite3.Connection, db: Path, setup: Callable[[], None]) -> None:
    """The sessions file's pragmas, then ``setup`` (tables, migrations), under its migration lock."""
    with _migration_lock(db):
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        setup()


async def _aprepare(conn: Any, db: Path, setup: Callable[[], Awaitable[None]]) -> None:
    """The async twin of :func:`_prepare` (the lock is taken in a worker thread, not on the event loop)."""
    lock = _migration_lock(db)
    await asyncio.to_thread(lock.acquire)
    try:
        for pragma in _PRAGMAS:
            await conn.execute(pragma)
        await setup()
    finally:
        lock.release()


@contextlib.contextmanager
def open_checkpointer(settings: Settings | None = None, path: str | Path | None = None) -> Iterator[BaseCheckpointSaver]:
    """SqliteSaver on ``path`` / ``settings.sessions_path``, or PostgresSaver when ``sessions_url`` is set."""
    settings = settings or get_settings()
    if settings.sessions_url and path is None:
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError as exc:  # pragma: no cover - optional extra
            raise ImportError("sessions_url is a Postgres URL: pip install 'slc-agent[postgres]'") from exc
        with PostgresSaver.from_conn_string(settings.sessions_url) as saver:
            saver.serde = serializer()
            saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    db = Path(path or settings.sessions_path)
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(db), check_same_thread=False)
    try:
        saver = SqliteSaver(conn, serde=serializer())
        _prepare(conn, db, saver.setup)
        yield saver
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def open_async_checkpointer(
    settings: Settings | None = None, path: str | Path | None = None
) -> AsyncIterator[BaseCheckpointSaver]:
    """The async twin (for ``astream`` / ``astream_events`` / ``ainvoke``)."""
    settings = settings or get_settings()
    if settings.sessions_url and path is None:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(settings.sessions_url) as saver:
            saver.serde = serializer()
            await saver.setup()
            yield saver
        return
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    db = Path(path or settings.sessions_path)
    db.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(str(db)) as conn:
        saver = AsyncSqliteSaver(conn, serde=serializer())
        await _aprepare(conn, db, saver.setup)
        yield saver



@contextlib.contextmanager
def open_store(settings: Settings | None = None, path: str | Path | None = None) -> Iterator[BaseStore]:
    """The LangGraph store next to the checkpointer (thread transcripts, :mod:`slc.graphs.transcripts`):
    SqliteStore in the sessions file (its own tables and connection), or PostgresStore for ``sessions_url``."""
    settings = settings or get_settings()
    if settings.sessions_url and path is None:
        from langgraph.store.postgres import PostgresStore

        with PostgresStore.from_conn_string(settings.sessions_url) as store:
            store.setup()
            yield store
        return
    from langgraph.store.sqlite import SqliteStore

    db = Path(path or settings.sessions_path)
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(db), check_same_thread=False, isolation_level=None)
    try:
        store = SqliteStore(conn)
        _prepare(conn, db, store.setup)
        yield store
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def open_async_store(settings: Settings | None = None, path: str | Path | None = None) -> AsyncIterator[BaseStore]:
    """The async twin of :func:`open_store` (compile with it and :func:`open_async_checkpointer`)."""
    settings = settings or get_settings()
    if settings.sessions_url and path is None:
        from langgraph.store.postgres.aio import AsyncPostgresStore

        async with AsyncPostgresStore.from_conn_string(settings.sessions_url) as store:
            await store.setup()
            yield store
        return
    import aiosqlite
    from langgraph.store.sqlite.aio import AsyncSqliteStore

    db = Path(path or settings.sessions_path)
    db.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(str(db), isolation_level=None) as conn:
        store = AsyncSqliteStore(conn)
        await _aprepare(conn, db, store.setup)
        yield store


@contextlib.contextmanager
def open_graph(
    settings: Settings | None = None,
    *,
    services: ServiceFactory | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    store: BaseStore | None = None,
) -> Iterator[CompiledStateGraph]:
    """The SLC graph compiled with a session checkpointer and the store of thread transcripts (SQLite by
    default, or Postgres, from ``settings``).

    ``services``: the factory its nodes run on (default: the process-wide one); ``settings`` default to
    its settings. ``checkpointer`` / ``store``: your own (a given checkpointer without a store: no
    transcript beyond the checkpoint's messages).
    """
    settings = settings or (services.settings if services is not None else None)
    if checkpointer is not None:
        yield compile_graph(checkpointer=checkpointer, store=store, services=services)
        return
    with open_checkpointer(settings) as saver, contextlib.ExitStack() as stack:
        store = store if store is not None else stack.enter_context(open_store(settings))
        yield compile_graph(checkpointer=saver, store=store, services=services)


@dataclass
class TurnResult:
    """What one turn produced (the answer and everything that explains it)."""

    answer: Answer
    final: list[FinalDetection]
    verdicts: list[Verdict]
    flags: list[str]
    degraded: bool
    large_vlm_calls: int
    image: str | None


def turn_input(question: str, image: ImageSource | None) -> dict[str, Any]:
    """The graph input of one turn of the in-process caller (a path names the caller's own photo)."""
    return {"question": question, "image": photo_input(image)}


def thread_history(
    graph: CompiledStateGraph, thread_id: str, *, context: Context | None = None, settings: Settings | None = None
) -> list[BaseMessage]:
    """The whole transcript of a session, for the tenant that owns it (ThreadAccessError for any other tenant).

    From the graph's store (:mod:`slc.graphs.transcripts`: every turn, however old); the checkpoint's
    messages (the last ``max_history_messages``) when the graph has no store or the thread no transcript
    (one started before transcripts were kept). ``settings``: those of the graph's service factory
    (default :func:`get_settings`)."""
    tenant = RunOptions.resolve(context, settings or get_settings()).tenant
    if isinstance(graph.checkpointer, BaseCheckpointSaver):
        check_owner(thread_owner(graph.checkpointer, thread_id), thread_id, tenant)
    if isinstance(graph.store, BaseStore):
        full = read_transcript(graph.store, tenant, thread_id)
        if full:
            return full
    return list(graph.get_state({"configurable": {"thread_id": thread_id}}).values.get("messages", []))


def turn_result(values: dict[str, Any]) -> TurnResult:
    """The TurnResult in a turn's final state; the photo's sha256 is the one its question was recorded with."""
    asked = next((m for m in reversed(values.get("messages", [])) if isinstance(m, HumanMessage)), None)
    return TurnResult(
        answer=values["answer"], final=values.get("final", []), verdicts=values.get("verdicts", []),
        flags=values.get("flags", []), degraded=values.get("degraded", False),
        large_vlm_calls=values.get("large_vlm_calls", 0),
        image=asked.additional_kwargs.get("image") if asked is not None else None,
    )


#: Checkpoint policy of a chat turn: ONE checkpoint when the turn ends (LangGraph durability "exit").
#: Why: a turn is then atomic — a crash mid-turn leaves the session exactly as it was after the previous
#: turn (the user re-asks), instead of a half-done turn of per-node checkpoints; and the graph's overhead
#: drops from ~11 ms to ~4 ms per turn on a file-backed SQLite here (benchmarks/graph_overhead.py).
#: Pass durability="async" (after every node) to ``ask`` for long turns you want to resume mid-way.
TURN_DURABILITY = "exit"


def ask(
    graph: CompiledStateGraph,
    question: str,
    image: ImageSource | None = None,
    *,
    thread_id: str | None = None,
    context: Context | None = None,
    settings: Settings | None = None,
    durability: str = TURN_DURABILITY,
) -> TurnResult:
    """Run one turn (sync). ``thread_id`` continues a session when the graph has a checkpointer; a thread of
    another tenant is refused (ThreadAccessError), and a turn waits for another turn on the same thread
    (ThreadBusyError after ``settings.turn_wait_s``).

    ``image``: a path of yours, the sha256 of a photo stored for the same tenant, a data URL, bytes or a PIL
    image. ``settings``: those of the graph's service factory, for the run's trace and metadata (default
    :func:`get_settings`). ``durability``: LangGraph's checkpoint policy (default :data:`TURN_DURABILITY`,
    one checkpoint per turn; "async": after every node, in the background).
    """
    inp = turn_input(question, image)
    cfg = run_config(thread_id, context, settings, visual=image is not None)
    return turn_result(graph.invoke(inp, config=cfg, context=context or Context(), durability=durability))


async def aask(
    graph: CompiledStateGraph,
    question: str,
    image: ImageSource | None = None,
    *,
    thread_id: str | None = None,
    context: Context | None = None,
    settings: Settings | None = None,
    durability: str = TURN_DURABILITY,
) -> TurnResult:
    """The async twin of :func:`ask` (the graph needs an async checkpointer, if any:
    :func:`open_async_checkpointer`)."""
    inp = turn_input(question, image)
    cfg = run_config(thread_id, context, settings, visual=image is not None)
    return turn_result(await graph.ainvoke(inp, config=cfg, context=context or Context(), durability=durability))


__all__ = ["ALLOWED_TYPES", "TURN_DURABILITY", "TurnResult", "aask", "ask", "open_async_checkpointer", "open_async_store",
           "open_checkpointer", "open_graph", "open_store", "serializer", "thread_history", "turn_input", "turn_result"]
