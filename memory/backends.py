"""Which vector store concept memory runs on: backend names -> :class:`~slc.memory.index.IndexBackend`.

A new store is a class implementing the protocols of :mod:`slc.memory.index` plus its line in
:data:`BACKENDS`; :class:`~slc.memory.store.ConceptMemory` does not change. Whatever the store, memory
reads from in-process copies of each tenant's indexes (:class:`~slc.memory.mirror.MirroredBackend`) and
writes through to the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from slc.agent.settings import Settings
from slc.memory.chroma_index import ChromaBackend
from slc.memory.index import IndexBackend
from slc.memory.mirror import MirroredBackend

if TYPE_CHECKING:
    from slc.memory.chroma_index import ChromaClient

BackendName = Literal["chroma"]
BACKENDS: dict[BackendName, Callable[[Settings], IndexBackend]] = {"chroma": ChromaBackend}


def open_backend(settings: Settings, name: BackendName = "chroma", *, client: "ChromaClient | None" = None) -> MirroredBackend:
    """The backend ``name`` configured by ``settings`` (Chroma: embedded, or a server at ``settings.chroma.url``),
    read through in-process copies of at most ``settings.memory_cache_mb``.

    ``client``: a Chroma client the caller opened (and closes) to run on instead of connecting anew.
    """
    durable = ChromaBackend(settings, client) if client is not None else BACKENDS[name](settings)
    return MirroredBackend(durable, int(settings.memory_cache_mb * 2**20))


__all__ = ["BACKENDS", "BackendName", "open_backend"]
