"""The full transcript of a chat thread, kept apart from its checkpoints (in the graph's LangGraph store).

Why apart: a thread's checkpoints hold only what the next turn needs (the last
``max_history_messages`` messages) and only the newest ``checkpoints_per_thread`` of them are kept
(:func:`slc.graphs.threads.prune_thread`), so a thread's checkpoint storage stays bounded however long it
runs. The person's chat itself is still theirs to read in full: each turn appends its messages (the
question, with its photo's sha256 only, and the answer) as one item of the store the graph was compiled
with (LangGraph's ``BaseStore``, ``runtime.store``): in-process a ``SqliteStore`` in the sessions file or
a ``PostgresStore`` (:func:`slc.graphs.sessions.open_graph`); under LangGraph Server its own store.

Layout: namespace ``(tenant, "transcripts", thread_id)``, one item per turn, keyed by a time-ordered id.
The tenant comes first, so under LangGraph Server a client reads its own transcripts through the store
API (``client.store.search_items(("transcripts", thread_id))``; :mod:`slc.graphs.auth` puts the caller's
identity in front of every namespace). A graph compiled without a store keeps no transcript (the
checkpoint's messages are then all there is). The item is written by the last node (``reason``), so a
turn that fails before its answer leaves nothing; one whose final checkpoint write fails leaves its turn
in the transcript only.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import BaseMessage, messages_from_dict, messages_to_dict
from langgraph.checkpoint.base.id import uuid6
from langgraph.store.base import BaseStore

TRANSCRIPTS = "transcripts"
_PAGE = 500


def namespace(tenant: str, thread_id: str) -> tuple[str, ...]:
    return (tenant, TRANSCRIPTS, str(thread_id))


def _slim(message: dict) -> dict:
    """``messages_to_dict``'s form without its empty fields (half the bytes; ``messages_from_dict`` reads it)."""
    return {"type": message["type"], "data": {k: v for k, v in message["data"].items() if v not in (None, {}, [], "", False)
                                              or k == "content"}}


def record_turn(store: BaseStore, tenant: str, thread_id: str, messages: Sequence[BaseMessage]) -> None:
    """Append one turn's messages to the thread's transcript."""
    value = {"messages": [_slim(m) for m in messages_to_dict(list(messages))]}
    store.put(namespace(tenant, thread_id), str(uuid6()), value, index=False)


def read_transcript(store: BaseStore, tenant: str, thread_id: str) -> list[BaseMessage]:
    """Every message of the thread, oldest first ([] when it has no transcript)."""
    ns, items, offset = namespace(tenant, thread_id), [], 0
    while True:
        page = store.search(ns, limit=_PAGE, offset=offset)
        items += [i for i in page if i.namespace == ns]
        if len(page) < _PAGE:
            break
        offset += _PAGE
    items.sort(key=lambda i: i.key)
    return [m for i in items for m in messages_from_dict(i.value.get("messages", []))]


def delete_transcripts(store: BaseStore, tenant: str, thread_ids: Sequence[str] | None = None) -> int:
    """Delete the transcripts of ``thread_ids`` (None: every thread of ``tenant``); returns the items deleted."""
    if thread_ids is None:
        spaces = [tuple(n) for n in store.list_namespaces(prefix=(tenant, TRANSCRIPTS), limit=1_000_000)]
    else:
        spaces = [namespace(tenant, t) for t in thread_ids]
    deleted = 0
    for ns in spaces:
        while page := store.search(ns, limit=_PAGE):
            for item in page:
                store.delete(item.namespace, item.key)
            deleted += len(page)
    return deleted


__all__ = ["TRANSCRIPTS", "delete_transcripts", "namespace", "read_transcript", "record_turn"]
